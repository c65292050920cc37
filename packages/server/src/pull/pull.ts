import {
  type BucketUpdates,
  clampLimit,
  type DeleteEntry,
  OP_DELETE,
  type PullRequest,
  type PullResponse,
  type Record,
  type SnapshotReason,
} from '@synchro/protocol'
import type pg from 'pg'
import { checkSchemaPair, type EngineContext, requireClient, withUserTransaction } from '../engine/context.js'
import { accessPredicate } from '../rls/rls.js'
import type { SchemaContract } from '../schema/contract.js'
import { trimRfc3339 } from '../util/time.js'
import {
  errorFacts,
  idTypeOf,
  type RecordRow,
  ROW_ALIAS,
  recordColumnsSql,
  rejectNul,
  unique,
  wireUpdatedAt,
} from './rows.js'

/** One changelog entry as the pull query returns it. */
interface Entry {
  seq: string
  table_name: string
  record_id: string
  operation: number
}

/**
 * Retention facts read in the pull's snapshot: the highest seq compaction removed (Decision 1) and the highest seq
 * ever issued (Decision 8). The sequence's last value survives an empty changelog; it is read only when the role
 * may (a role without the privilege falls back to max(seq) and the compaction boundary).
 */
const HISTORY_SQL = `
SELECT (SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1)::text AS compacted,
       GREATEST(
         (SELECT max(seq) FROM sync_changelog),
         (SELECT CASE WHEN has_sequence_privilege(s.oid, 'SELECT,USAGE') THEN pg_sequence_last_value(s.oid) END
            FROM (SELECT pg_get_serial_sequence('sync_changelog', 'seq')::regclass AS oid) s),
         (SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1),
         0
       )::text AS issued`

/**
 * The page of changelog entries: one bounded index scan of (bucket_id, seq) per subscribed bucket, merged and cut to
 * `limit` (+1 to learn has_more). Written as a LATERAL join because `bucket_id = ANY(...) ORDER BY seq` alone makes
 * PostgreSQL either sort every matching entry or walk the whole seq index filtering buckets.
 */
function entriesSql(filtered: boolean): string {
  return `
SELECT c.seq::text AS seq, c.table_name, c.record_id, c.operation
  FROM unnest($1::text[]) AS b(id)
 CROSS JOIN LATERAL (
       SELECT seq, table_name, record_id, operation
         FROM sync_changelog
        WHERE bucket_id = b.id AND seq > $2${filtered ? ' AND table_name = ANY($4::text[])' : ''}
        ORDER BY seq
        LIMIT $3) c
 ORDER BY c.seq
 LIMIT $3`
}

/** First entry of an unlisted table inside (from, to] in the subscribed buckets (Decision 9). */
const FIRST_SKIPPED_SQL = `
SELECT min(c.seq)::text AS seq
  FROM unnest($1::text[]) AS b(id)
 CROSS JOIN LATERAL (
       SELECT seq FROM sync_changelog
        WHERE bucket_id = b.id AND seq > $2 AND seq <= $3 AND NOT (table_name = ANY($4::text[]))
        ORDER BY seq
        LIMIT 1) c`

/** Served pulls only: the stored checkpoint only moves up (§2.1); activity stamps are refreshed. */
const ADVANCE_SQL = `
UPDATE sync_clients
   SET last_pull_seq = GREATEST(last_pull_seq, $2::bigint), last_pull_at = now(), last_sync_at = now()
 WHERE id = $1`

/** POST /sync/pull (PROTOCOL.md §1.5, §3 D; Decisions 1, 5, 8, 9, 10, 14, 19). */
export async function pull(ctx: EngineContext, userId: string, req: PullRequest): Promise<PullResponse> {
  rejectNul([req.client_id, ...(req.tables ?? []), ...(req.known_buckets ?? [])])
  const contract = await checkSchemaPair(ctx, req.schema_version, req.schema_hash)
  const client = await requireClient(ctx, ctx.pool, userId, req.client_id)
  const limit = clampLimit(req.limit)
  // A negative checkpoint is a client at the very beginning: same meaning as 0.
  const checkpoint = Math.max(0, req.checkpoint ?? 0)
  // `tables: []` means no filter (§1.5). Duplicate subscriptions would return an entry twice.
  const tables = req.tables && req.tables.length > 0 ? unique(req.tables) : undefined
  const subs = unique(client.bucketSubs)
  const base = { schema_version: contract.version, schema_hash: contract.hash }

  const required = (reason: SnapshotReason): PullResponse => {
    callHook(ctx, 'onSnapshotRequired', () =>
      ctx.hooks.onSnapshotRequired?.({ userId, clientId: req.client_id, reason }),
    )
    return {
      changes: [],
      deletes: [],
      checkpoint,
      has_more: false,
      snapshot_required: true,
      snapshot_reason: reason,
      ...base,
    }
  }

  // "Completed a snapshot" = a stored checkpoint exists: only a final snapshot page or a served pull writes it.
  if (checkpoint === 0 && client.lastPullSeq === null) return required('initial_sync_required')

  // REPEATABLE READ: the retention check, the entries and the hydrated rows all come from one MVCC snapshot, so a
  // compaction batch committing in between cannot make us serve a page with a hole in it.
  const page = await withUserTransaction(
    ctx,
    userId,
    async (db) => {
      const { rows: hist } = await db.query<{ compacted: string | null; issued: string }>(HISTORY_SQL)
      const compacted = Number(hist[0]?.compacted ?? 0)
      const issued = Number(hist[0]?.issued ?? 0)
      // Decision 8: ahead of every seq ever issued → the database lost history (e.g. restored from a backup).
      if (checkpoint > issued) return { reason: 'history_unavailable' as const }
      // Decision 1: only entries with seq ≤ compacted are gone; a client at exactly that seq lost nothing.
      if (checkpoint < compacted) return { reason: 'checkpoint_before_retention' as const }
      return readPage(ctx, db, contract, subs, checkpoint, limit, tables)
    },
    { readOnly: true, isolation: 'repeatable read' },
  )
  if ('reason' in page) return required(page.reason)

  await ctx.pool.query(ADVANCE_SQL, [client.id, page.storedCheckpoint])
  const out: PullResponse = {
    changes: page.changes,
    deletes: page.deletes,
    checkpoint: page.checkpoint,
    has_more: page.hasMore,
    ...base,
  }
  const updates = bucketUpdates(subs, req.known_buckets)
  if (updates) out.bucket_updates = updates
  ctx.logger.debug(
    { changes: page.changes.length, deletes: page.deletes.length, hasMore: page.hasMore },
    'pull page served',
  )
  callHook(ctx, 'onPullComplete', () =>
    ctx.hooks.onPullComplete?.({
      userId,
      clientId: req.client_id,
      checkpoint: page.checkpoint,
      changes: page.changes.length,
      deletes: page.deletes.length,
    }),
  )
  return out
}

interface Page {
  changes: Record[]
  deletes: DeleteEntry[]
  checkpoint: number
  hasMore: boolean
  /** What may be stored as last_pull_seq (≤ checkpoint under a tables filter, Decision 9). */
  storedCheckpoint: number
}

async function readPage(
  ctx: EngineContext,
  db: pg.PoolClient,
  contract: SchemaContract,
  subs: string[],
  from: number,
  limit: number,
  tables: string[] | undefined,
): Promise<Page> {
  const params: unknown[] = [subs, from, limit + 1]
  if (tables) params.push(tables)
  const { rows } = await db.query<Entry>(entriesSql(tables !== undefined), params)
  const hasMore = rows.length > limit
  const entries = hasMore ? rows.slice(0, limit) : rows
  const last = entries[entries.length - 1]
  const checkpoint = last ? Number(last.seq) : from

  // Dedup by (table, id): the last entry of a record decides. Map insertion order is re-set on every hit so the
  // answer lists records in the order of their last entry.
  const latest = new Map<string, Entry>()
  for (const e of entries) {
    const key = `${e.table_name}\u0000${e.record_id}`
    latest.delete(key)
    latest.set(key, e)
  }
  const deletes: DeleteEntry[] = []
  const wanted = new Map<string, string[]>()
  for (const e of latest.values()) {
    // Entries of tables that are no longer registered cannot be hydrated nor applied by a client: skipped.
    if (!ctx.registry.get(e.table_name)) continue
    if (e.operation === OP_DELETE) {
      deletes.push({ id: e.record_id, table_name: e.table_name })
      continue
    }
    const ids = wanted.get(e.table_name) ?? []
    ids.push(e.record_id)
    wanted.set(e.table_name, ids)
  }

  // One query per table. A query failure is an error for the whole page (Decision 10: nothing is skipped silently
  // and the checkpoint does not move); a row that is gone (hard delete, §3 D 46) or not readable by the caller
  // (Decision 5, §3 D 54) is simply absent.
  const hydrated = new Map<string, RecordRow>()
  for (const [tableName, ids] of wanted) {
    for (const row of await hydrate(ctx, db, contract, tableName, ids)) hydrated.set(`${tableName}\u0000${row.id}`, row)
  }
  const changes: Record[] = []
  for (const [key, e] of latest) {
    if (e.operation === OP_DELETE) continue
    const row = hydrated.get(key)
    if (!row) continue
    const rec: Record = { id: row.id, table_name: e.table_name, data: row.data, updated_at: wireUpdatedAt(row) }
    const deletedAt = trimRfc3339(row.deleted_at)
    if (deletedAt) rec.deleted_at = deletedAt
    changes.push(rec)
  }

  let storedCheckpoint = checkpoint
  if (tables && checkpoint > from) {
    const { rows: skipped } = await db.query<{ seq: string | null }>(FIRST_SKIPPED_SQL, [
      subs,
      from,
      checkpoint,
      tables,
    ])
    const first = skipped[0]?.seq
    if (first != null) storedCheckpoint = Math.min(checkpoint, Number(first) - 1)
  }
  return { changes, deletes, checkpoint, hasMore, storedCheckpoint }
}

async function hydrate(
  ctx: EngineContext,
  db: pg.PoolClient,
  contract: SchemaContract,
  tableName: string,
  ids: string[],
): Promise<RecordRow[]> {
  const t = ctx.registry.get(tableName)
  if (!t) return []
  const idType = idTypeOf(t, contract)
  // Compare in the PK's own type so the primary-key index serves the lookup (`id::text = ANY` would scan).
  const match = idType
    ? `${ROW_ALIAS}.${t.q.id} = ANY($1::text[]::${idType}[])`
    : `${ROW_ALIAS}.${t.q.id}::text = ANY($1::text[])`
  const read = accessPredicate(ctx.registry, t, 'read', ROW_ALIAS)
  const { rows } = await db.query<RecordRow>(
    `SELECT ${recordColumnsSql(t, contract)}
       FROM ${t.sqlName} ${ROW_ALIAS}
      WHERE ${match}${read ? `\n        AND ${read}` : ''}`,
    [ids],
  )
  return rows
}

/**
 * Decision 19: `known_buckets` absent → nothing; present (even `[]`) → the difference with the subscriptions,
 * `added` in subscription order, `removed` in the order sent; undefined when both are empty.
 */
export function bucketUpdates(
  subs: readonly string[],
  known: readonly string[] | undefined,
): BucketUpdates | undefined {
  if (known === undefined) return undefined
  const knownSet = new Set(known)
  const subSet = new Set(subs)
  const added = unique(subs.filter((b) => !knownSet.has(b)))
  const removed = unique(known.filter((b) => !subSet.has(b)))
  if (added.length === 0 && removed.length === 0) return undefined
  const out: BucketUpdates = {}
  if (added.length > 0) out.added = added
  if (removed.length > 0) out.removed = removed
  return out
}

/** Hooks are informational here: one that throws is logged, never turns a served page into a 500. */
function callHook(ctx: EngineContext, name: string, fn: () => void): void {
  try {
    fn()
  } catch (err) {
    ctx.logger.warn({ err: errorFacts(err), hook: name }, 'hook failed')
  }
}
