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
import { errorFacts, idTypeOf, ROW_ALIAS, recordColumnsSql, rejectNul, unique, wireUpdatedAt } from './rows.js'

/**
 * Retention facts (Decision 1, 8): the highest seq compaction removed, and the highest seq ever issued. The sequence's
 * last value survives an empty changelog; it is read only when the role may (otherwise max(seq) and the compaction
 * boundary stand in).
 */
const HISTORY_CTE = `
h AS (
  SELECT coalesce((SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1), 0) AS compacted,
         GREATEST(
           (SELECT max(seq) FROM sync_changelog),
           (SELECT CASE WHEN has_sequence_privilege(s.oid, 'SELECT,USAGE') THEN pg_sequence_last_value(s.oid) END
              FROM (SELECT pg_get_serial_sequence('sync_changelog', 'seq')::regclass AS oid) s),
           (SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1),
           0) AS issued
)`

/** One row of the page statement: the retention facts, the page facts, and one deduplicated entry (+ its row). */
interface PageRow {
  compacted: string
  issued: string
  fetched: number
  last_seq: string | null
  seq: string | null
  table_name: string | null
  record_id: string | null
  operation: number | null
  id: string | null
  data: { [column: string]: unknown } | null
  updated_at: string | null
  deleted_at: string | null
}

/**
 * The whole page in ONE statement (one MVCC snapshot, one round trip, no ids shipped back and forth):
 * - `e`: up to limit+1 entries (the extra one only tells has_more) — one bounded index scan of (bucket_id, seq) per
 *   subscribed bucket, merged; a LATERAL join because `bucket_id = ANY(...) ORDER BY seq` alone makes PostgreSQL
 *   either sort every matching entry or walk the whole seq index. `ORDER BY bucket_id, seq` (bucket_id is fixed)
 *   names the index order, so the planner cannot pick the seq index and filter buckets (it did when one bucket
 *   dominates the statistics, scanning the whole tail for every other bucket). Skipped when the retention check fails.
 * - `d`: dedup by (table, id), the last entry wins.
 * - `r`: per registered table, one index lookup of the ids still to hydrate, rendered to JSON by PostgreSQL and
 *   filtered by the caller's read predicate (Decision 5).
 * Parameters: $1 subscriptions, $2 checkpoint, $3 limit, $4 table names (registration order), [$5 tables filter].
 */
function pageSql(ctx: EngineContext, contract: SchemaContract, filtered: boolean): string {
  const hydrations = ctx.tables.map((t, i) => {
    const idType = idTypeOf(t, contract)
    const ids = `ARRAY(SELECT record_id FROM d WHERE table_name = ($4::text[])[${i + 1}] AND operation <> ${OP_DELETE})`
    // Compare in the PK's own type so the primary-key index serves the lookup (`id::text = ANY` would scan).
    const match = idType
      ? `${ROW_ALIAS}.${t.q.id} = ANY(${ids}::${idType}[])`
      : `${ROW_ALIAS}.${t.q.id}::text = ANY(${ids})`
    const read = accessPredicate(ctx.registry, t, 'read', ROW_ALIAS)
    return `SELECT ($4::text[])[${i + 1}] AS table_name, ${recordColumnsSql(t, contract)}
    FROM ${t.sqlName} ${ROW_ALIAS}
   WHERE ${match}${read ? ` AND ${read}` : ''}`
  })
  return `
WITH ${HISTORY_CTE},
e AS MATERIALIZED (
  SELECT c.seq, c.table_name, c.record_id, c.operation
    FROM unnest($1::text[]) AS b(id)
   CROSS JOIN LATERAL (
         SELECT seq, table_name, record_id, operation
           FROM sync_changelog
          WHERE bucket_id = b.id AND seq > $2${filtered ? ' AND table_name = ANY($5::text[])' : ''}
          ORDER BY bucket_id, seq
          LIMIT $3 + 1) c
   WHERE $2 BETWEEN (SELECT compacted FROM h) AND (SELECT issued FROM h)
   ORDER BY c.seq
   LIMIT $3 + 1
),
p AS MATERIALIZED (SELECT * FROM e ORDER BY seq LIMIT $3),
d AS MATERIALIZED (
  SELECT DISTINCT ON (table_name, record_id) seq, table_name, record_id, operation
    FROM p
   ORDER BY table_name, record_id, seq DESC
),
r AS (
  ${hydrations.join('\n  UNION ALL\n  ')}
)
SELECT h.compacted::text, h.issued::text, (SELECT count(*) FROM e)::int AS fetched, (SELECT max(seq) FROM p)::text AS last_seq,
       x.seq::text, x.table_name, x.record_id, x.operation, x.id, x.data, x.updated_at, x.deleted_at
  FROM h
  LEFT JOIN (
       SELECT d.seq, d.table_name, d.record_id, d.operation, r.id, r.data, r.updated_at, r.deleted_at
         FROM d LEFT JOIN r ON r.table_name = d.table_name AND r.id = d.record_id) x ON true
 ORDER BY x.seq`
}

/** First entry of an unlisted table inside (from, to] in the subscribed buckets (Decision 9). */
const FIRST_SKIPPED_SQL = `
SELECT min(c.seq)::text AS seq
  FROM unnest($1::text[]) AS b(id)
 CROSS JOIN LATERAL (
       SELECT seq FROM sync_changelog
        WHERE bucket_id = b.id AND seq > $2 AND seq <= $3 AND NOT (table_name = ANY($4::text[]))
        ORDER BY bucket_id, seq
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

  // One statement reads the retention facts, the entries and the rows (a single MVCC snapshot, so a compaction batch
  // committing meanwhile cannot leave a hole in the page); the checkpoint advance commits in the same transaction.
  const page = await withUserTransaction(ctx, userId, async (db) => {
    const result = await readPage(ctx, db, contract, subs, checkpoint, limit, tables)
    if ('reason' in result) return result
    await db.query(ADVANCE_SQL, [client.id, result.storedCheckpoint])
    return result
  })
  if ('reason' in page) return required(page.reason)

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
): Promise<Page | { reason: SnapshotReason }> {
  const params: unknown[] = [subs, from, limit, ctx.tables.map((t) => t.tableName)]
  if (tables) params.push(tables)
  const { rows } = await db.query<PageRow>(pageSql(ctx, contract, tables !== undefined), params)
  const head = rows[0]
  if (!head) throw new Error('pull: page statement returned no row')
  // Decision 8: ahead of every seq ever issued → the database lost history (e.g. restored from a backup).
  if (from > Number(head.issued)) return { reason: 'history_unavailable' }
  // Decision 1: only entries with seq ≤ compacted are gone; a client at exactly that seq lost nothing.
  if (from < Number(head.compacted)) return { reason: 'checkpoint_before_retention' }

  const hasMore = head.fetched > limit
  const checkpoint = head.last_seq === null ? from : Number(head.last_seq)
  const changes: Record[] = []
  const deletes: DeleteEntry[] = []
  for (const r of rows) {
    if (r.table_name === null || r.record_id === null) continue
    // Entries of tables that are no longer registered can be neither hydrated nor applied by a client: skipped.
    if (!ctx.registry.get(r.table_name)) continue
    if (r.operation === OP_DELETE) {
      deletes.push({ id: r.record_id, table_name: r.table_name })
      continue
    }
    // No row: hard-deleted (§3 D 46) or not readable by the caller (Decision 5, §3 D 54) — silently absent. A row
    // that cannot be *read* fails the statement instead (Decision 10): error, no checkpoint advance.
    if (r.id === null || r.data === null) continue
    const rec: Record = {
      id: r.id,
      table_name: r.table_name,
      data: r.data,
      updated_at: wireUpdatedAt(r),
    }
    const deletedAt = trimRfc3339(r.deleted_at)
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
