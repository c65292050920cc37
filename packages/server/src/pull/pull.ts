import { createHash } from 'node:crypto'
import {
  type BucketUpdates,
  clampLimit,
  type DeleteEntry,
  OP_DELETE,
  OP_UPDATE,
  type PullRequest,
  type PullResponse,
  type SnapshotReason,
  type SyncRecord,
} from '@synchro/protocol'
import { bucketEntries, HISTORY_CTE, historyGap, historyServes } from '../changelog/reader.js'
import { advancePullCte } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { openRequest, type RequestTx } from '../request/open.js'
import { accessPredicate, contractColumnTypes } from '../rls/rls.js'
import type { SchemaContract } from '../schema/contract.js'
import { trimRfc3339 } from '../util/time.js'
import { JSON_TEXT_TYPES, jsonTextDeeperThan, textRecord } from './record.js'
import {
  idTypeOf,
  ROW_ALIAS,
  recordColumnsSql,
  recordUnrenderable,
  rejectNul,
  type Unrenderable,
  unique,
  wireUpdatedAt,
} from './rows.js'

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
  /** The row's JSON text as PostgreSQL rendered it (passed through to the response, see record.ts). */
  data: string | null
  updated_at: string | null
  deleted_at: string | null
}

/**
 * The whole page in ONE statement (one MVCC snapshot, one round trip, no ids shipped back and forth):
 * - `h`: the retention facts (changelog/reader.ts).
 * - `e`: up to limit+1 entries (the extra one only tells has_more) — one bounded index scan of (bucket_id, seq) per
 *   subscribed bucket, merged; a LATERAL join because `bucket_id = ANY(...) ORDER BY seq` alone makes PostgreSQL
 *   either sort every matching entry or walk the whole seq index. Skipped when the retention check fails.
 * - `d`: dedup by (table, id), the last entry wins; entries of tables no longer registered are dropped (they can be
 *   neither hydrated nor applied by a client).
 * - `r`: per registered table, one index lookup of the ids still to hydrate, rendered to JSON by PostgreSQL and
 *   filtered by the caller's read predicate (Decision 5).
 * - `u`: served pulls only (retention check passed), the checkpoint advance — in the same statement, so it commits
 *   with exactly what was read, and a page that fails (Decision 10) advances nothing. The stored value is the last
 *   returned seq or, under a `tables` filter (Decision 9), just before the first skipped entry of an unlisted table.
 * Rows, not one aggregated JSON text: node-pg's per-row parsing measured faster than building and parsing one string
 * (string_agg / json_agg of the records: +30 % per page).
 * Parameters: $1 subscriptions, $2 checkpoint, $3 limit, $4 table names (registration order), $5 client row id,
 * [$6 tables filter].
 */
function pageSql(ctx: EngineContext, contract: SchemaContract, filtered: boolean): string {
  const hydrations = ctx.tables.map((t, i) => {
    const idType = idTypeOf(t, contract)
    const ids = `ARRAY(SELECT record_id FROM d WHERE table_name = ($4::text[])[${i + 1}] AND operation <> ${OP_DELETE})`
    // Compare in the PK's own type so the primary-key index serves the lookup (`id::text = ANY` would scan).
    const match = idType
      ? `${ROW_ALIAS}.${t.q.id} = ANY(${ids}::${idType}[])`
      : `${ROW_ALIAS}.${t.q.id}::text = ANY(${ids})`
    const read = accessPredicate(ctx.registry, t, 'read', ROW_ALIAS, contractColumnTypes(contract))
    return `SELECT ($4::text[])[${i + 1}] AS table_name, ${recordColumnsSql(t, contract)}
    FROM ${t.sqlName} ${ROW_ALIAS}
   WHERE ${match}${read ? ` AND ${read}` : ''}`
  })
  const served = historyServes('$2')
  const last = `(SELECT max(seq) FROM p)`
  const stored = filtered ? `LEAST(coalesce(${last}, $2), (SELECT seq FROM sk) - 1)` : `coalesce(${last}, $2)`
  // Decision 36 (staleness follows pull progress): an unfiltered pull that found nothing more to read is caught up.
  const caughtUp = filtered ? 'false' : '(SELECT count(*) FROM e) <= $3'
  return `
WITH ${HISTORY_CTE},
e AS MATERIALIZED (
  SELECT c.seq, c.table_name, c.record_id, c.operation
    FROM unnest($1::text[]) AS b(id)
   CROSS JOIN LATERAL (
         ${bucketEntries('seq, table_name, record_id, operation', filtered ? ' AND table_name = ANY($6::text[])' : '')}
          LIMIT $3 + 1) c
   WHERE ${served}
   ORDER BY c.seq
   LIMIT $3 + 1
),
p AS MATERIALIZED (SELECT * FROM e ORDER BY seq LIMIT $3),
d AS MATERIALIZED (
  SELECT DISTINCT ON (table_name, record_id) seq, table_name, record_id, operation
    FROM p
   WHERE table_name = ANY($4::text[])
   ORDER BY table_name, record_id, seq DESC
),
r AS (
  ${hydrations.join('\n  UNION ALL\n  ')}
),
x AS (
  SELECT d.seq, d.table_name, d.record_id, d.operation, r.id, r.data, r.updated_at, r.deleted_at
    FROM d LEFT JOIN r ON r.table_name = d.table_name AND r.id = d.record_id
),${
    filtered
      ? `
sk AS (
  SELECT min(c.seq) AS seq
    FROM unnest($1::text[]) AS b(id)
   CROSS JOIN LATERAL (
         ${bucketEntries('seq', ` AND seq <= ${last} AND NOT (table_name = ANY($6::text[]))`)}
          LIMIT 1) c
),`
      : ''
  }
${advancePullCte('u', { rowId: '$5', stored, caughtUp, when: served })}
SELECT h.compacted::text, h.issued::text, (SELECT count(*) FROM e)::int AS fetched, ${last}::text AS last_seq,
       x.seq::text, x.table_name, x.record_id, x.operation, x.id, x.data, x.updated_at, x.deleted_at
  FROM h LEFT JOIN x ON true
 ORDER BY x.seq`
}

/** POST /sync/pull (PROTOCOL.md §1.5, §3 D; Decisions 1, 5, 8, 9, 10, 14, 19). */
export async function pull(
  ctx: EngineContext,
  userId: string,
  req: PullRequest,
  deadline?: RequestDeadline,
): Promise<PullResponse> {
  rejectNul([req.client_id, ...(req.tables ?? []), ...(req.known_buckets ?? [])])
  const limit = clampLimit(req.limit)
  // A negative checkpoint is a client at the very beginning: same meaning as 0.
  const checkpoint = Math.max(0, req.checkpoint ?? 0)
  // `tables: []` means no filter (§1.5). Duplicate subscriptions would return an entry twice.
  const tables = req.tables && req.tables.length > 0 ? unique(req.tables) : undefined

  // BEGIN + one statement: app.user_id, schema pair (409), client row (404 / stale hook), in that order. The
  // checkpoint advance is bookkeeping (a lost one only makes the next pull start earlier; records are idempotent
  // upserts): its commit does not wait for the WAL flush.
  const tx = await openRequest(ctx, userId, req, { access: 'read', settings: { synchronous_commit: 'off' }, deadline })
  const { contract, client } = tx
  const subs = unique(client.bucketSubs)
  const base = { schema_version: contract.version, schema_hash: contract.hash }

  const required = (reason: SnapshotReason): PullResponse => {
    emitHook(ctx, 'onSnapshotRequired', () => ({ userId, clientId: req.client_id, reason }))
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

  // One statement reads the retention facts, the entries and the rows (a single MVCC snapshot, so a compaction batch
  // committing meanwhile cannot leave a hole in the page) and advances the checkpoint of a served pull.
  let page: Page | { reason: SnapshotReason }
  try {
    // "Completed a snapshot" = a stored checkpoint exists: only a final snapshot page or a served pull writes it.
    if (checkpoint === 0 && client.lastPullSeq === null) {
      await tx.abort()
      return required('initial_sync_required')
    }
    // Rows the server cannot render were left out of the page before anything commits (Decision 35).
    page = await readPage(ctx, tx, contract, subs, client.id, checkpoint, limit, tables)
  } catch (err) {
    await tx.abort()
    throw err
  }
  // The page statement committed with its own round trip (queryThenCommit); this only covers its fallback path.
  await tx.commit()
  if ('reason' in page) return required(page.reason)
  await recordUnrenderable(ctx, page.unrenderable)

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
  emitHook(ctx, 'onPullComplete', () => ({
    userId,
    clientId: req.client_id,
    checkpoint: page.checkpoint,
    changes: page.changes.length,
    deletes: page.deletes.length,
  }))
  return out
}

export interface Page {
  changes: SyncRecord[]
  deletes: DeleteEntry[]
  checkpoint: number
  hasMore: boolean
  unrenderable: Unrenderable[]
  /** The tables of the page's entries, including rows the caller's read predicate hid (live frames' sharing). */
  tables: Set<string>
  /** Create/update entries whose row was not returned (hard-deleted, or hidden by the read predicate). */
  missing: number
}

/** The page SQL depends on the registry (fixed) and the contract (changes with DDL): built once per contract. */
const pageSqlCache = new WeakMap<SchemaContract, Map<EngineContext, [PageSql, PageSql]>>()

/** A page statement and the name it is prepared under (its hash: equal names, equal texts). */
interface PageSql {
  text: string
  name: string
}

function cachedPageSql(ctx: EngineContext, contract: SchemaContract, filtered: boolean): PageSql {
  let byCtx = pageSqlCache.get(contract)
  if (!byCtx) {
    byCtx = new Map()
    pageSqlCache.set(contract, byCtx)
  }
  let pair = byCtx.get(ctx)
  if (!pair) {
    const named = (text: string): PageSql => ({
      text,
      name: `synchro_pull_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`,
    })
    pair = [named(pageSql(ctx, contract, false)), named(pageSql(ctx, contract, true))]
    byCtx.set(ctx, pair)
  }
  return pair[filtered ? 1 : 0]
}

/** One page of `subs` after `from` (no checkpoint advance unless `clientRowId` is a client's row id). */
export async function readPage(
  ctx: EngineContext,
  tx: Pick<RequestTx, 'queryThenCommit'>,
  contract: SchemaContract,
  subs: string[],
  clientRowId: string,
  from: number,
  limit: number,
  tables: string[] | undefined,
): Promise<Page | { reason: SnapshotReason }> {
  const params: unknown[] = [subs, from, limit, ctx.tables.map((t) => t.tableName), clientRowId]
  if (tables) params.push(tables)
  // The page statement and COMMIT travel together: one round trip for the whole page after the opening one.
  const sql = cachedPageSql(ctx, contract, tables !== undefined)
  const rows = await tx.queryThenCommit<PageRow>({
    text: sql.text,
    values: params,
    types: JSON_TEXT_TYPES,
    prepare: sql.name,
  })
  const head = rows[0]
  if (!head) throw new Error('pull: page statement returned no row')
  const gap = historyGap(from, { compacted: Number(head.compacted), issued: Number(head.issued) })
  if (gap) return { reason: gap }

  const changes: SyncRecord[] = []
  const deletes: DeleteEntry[] = []
  const unrenderable: Unrenderable[] = []
  const tableNames = new Set<string>()
  let missing = 0
  for (const r of rows) {
    // The head row alone (LEFT JOIN) when the page is empty; entries of unregistered tables were dropped in SQL.
    if (r.table_name === null || r.record_id === null) continue
    tableNames.add(r.table_name)
    if (r.operation === OP_DELETE) {
      deletes.push({ id: r.record_id, table_name: r.table_name })
      continue
    }
    // No row: hard-deleted (§3 D 46) or not readable by the caller (Decision 5, §3 D 54) — silently absent. A row
    // that cannot be *read* fails the statement instead (Decision 10): error, no checkpoint advance.
    if (r.id === null || r.data === null) {
      missing++
      continue
    }
    if (jsonTextDeeperThan(r.data, ctx.limits.maxJsonDepth)) {
      unrenderable.push({ table: r.table_name, id: r.id, operation: r.operation ?? OP_UPDATE })
      continue
    }
    changes.push(textRecord(r.id, r.table_name, r.data, wireUpdatedAt(r), trimRfc3339(r.deleted_at) || undefined))
  }
  return {
    changes,
    deletes,
    checkpoint: head.last_seq === null ? from : Number(head.last_seq),
    hasMore: head.fetched > limit,
    unrenderable,
    tables: tableNames,
    missing,
  }
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
