import { clampLimit, OP_INSERT, type SnapshotRequest, type SnapshotResponse, type SyncRecord } from '@synchro/protocol'
import type pg from 'pg'
import { headSeq } from '../changelog/reader.js'
import { completeSnapshot } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { BadRequestError } from '../errors.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { JSON_TEXT_TYPES, jsonTextDeeperThan, textRecord } from '../pull/record.js'
import {
  idTypeOf,
  ROW_ALIAS,
  recordColumnsSql,
  recordUnrenderable,
  rejectNul,
  type Unrenderable,
  wireUpdatedAt,
} from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import { openRequest } from '../request/open.js'
import { accessPredicate, contractColumnTypes } from '../rls/rls.js'
import type { SchemaContract } from '../schema/contract.js'

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint'])
const TEXT_TYPES = /^(text|character varying(\(\d+\))?)$/
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/** How one table is walked: the ORDER BY key and the "after the cursor" condition for a given `after_id`. */
interface Keyset {
  order: string
  after(param: string, afterId: string): string
}

/**
 * Keyset paging in an order the primary-key index can serve, wherever one exists:
 * - uuid: uuid order is the byte order of the canonical text form, i.e. `id::text COLLATE "C"` order (what §3 E 58
 *   asks for), so `ORDER BY id` walks the PK index. A non-uuid `after_id` is compared as text in that same order.
 * - text/varchar: the column's own collation (the PK index's order).
 * - smallint/integer/bigint: numeric order (the cursor is opaque to clients; text order of numbers would need a
 *   sort of the whole table per page). A non-integer `after_id` → 400.
 * - anything else: `id::text COLLATE "C"`, which cannot use an index: each page sorts the readable rows of the table
 *   (top-N), so a snapshot of such a table costs O(rows × pages). Documented in docs/architecture.md.
 */
function keysetFor(t: ResolvedTable, idType: string | undefined): Keyset {
  const id = `${ROW_ALIAS}.${t.q.id}`
  const asText = `${id}::text COLLATE "C"`
  if (idType === 'uuid') {
    return {
      order: id,
      after: (p, afterId) => (UUID_RE.test(afterId) ? `${id} > ${p}::uuid` : `${asText} > ${p}`),
    }
  }
  if (idType && TEXT_TYPES.test(idType)) return { order: id, after: (p) => `${id} > ${p}` }
  if (idType && INTEGER_TYPES.has(idType)) {
    return {
      order: id,
      after: (p, afterId) => {
        if (!/^-?\d{1,19}$/.test(afterId)) throw new BadRequestError('invalid cursor')
        const n = BigInt(afterId)
        if (n < INT64_MIN || n > INT64_MAX) throw new BadRequestError('invalid cursor')
        return `${id} > ${p}::bigint`
      },
    }
  }
  return { order: asText, after: (p) => `${asText} > ${p}` }
}

/**
 * The planner misjudges the ownership predicate (`owner::text = current_setting(...)`, estimated at 0.5 % of the rows)
 * and picks a full scan + top-N sort per page: O(table) per page, O(table²/page) per snapshot. Walking the
 * primary-key index in keyset order instead costs O(table) for the *whole* snapshot, whatever share of the table the
 * caller owns. Transaction-local (set_config(..., true)), so nothing leaks to other requests.
 */
const PAGE_SETTINGS = { enable_seqscan: 'off', enable_sort: 'off' }

/** A statement of the page and how it runs (see `snapshot`). */
type Run = (query: { text: string; values: unknown[]; types?: pg.CustomTypesConfig }) => Promise<TextRow[]>

/**
 * POST /sync/snapshot (PROTOCOL.md §1.5, §3 E; Decisions 5, 7, 14). Stateless: the cursor {checkpoint, table_idx,
 * after_id} says where the next page starts. Each page is its own REPEATABLE READ transaction: the pages of one
 * snapshot are *not* one MVCC snapshot, which is fine because every change committed after the captured checkpoint
 * reaches the client again through pull (records are idempotent upserts).
 * Round trips per page: BEGIN with one statement (app.user_id + planner settings + schema fingerprint + client row,
 * see `openRequest`), then the page's first table statement *together with COMMIT* (nearly every page is filled by
 * one table: two round trips in all; the first page also reads max(seq)). A page that reaches the end of a table
 * continues in a second transaction (opened the same way) with one statement per further table, then COMMIT.
 */
export async function snapshot(
  ctx: EngineContext,
  userId: string,
  req: SnapshotRequest,
  deadline?: RequestDeadline,
): Promise<SnapshotResponse> {
  rejectNul([req.client_id, req.cursor?.after_id])
  const limit = clampLimit(req.limit)
  const cursor = req.cursor
  const open = () =>
    openRequest(ctx, userId, req, {
      access: 'read',
      begin: 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
      settings: PAGE_SETTINGS,
      deadline,
    })
  let tx = await open()
  const { contract, client } = tx
  const records: SyncRecord[] = []
  const unrenderable: Unrenderable[] = []
  let checkpoint = 0
  let next: { tableIdx: number; afterId: string } | undefined
  try {
    if (cursor && (cursor.table_idx < 0 || cursor.checkpoint < 0)) throw new BadRequestError('invalid cursor')
    // Decision 7: the changelog head, captured once on the first page; later pages carry it in the cursor (even 0).
    checkpoint = cursor ? cursor.checkpoint : await headSeq(tx.db)
    let tableIdx = cursor?.table_idx ?? 0
    let afterId = cursor?.after_id ?? ''
    let committed = false
    while (tableIdx < ctx.tables.length) {
      const t = ctx.tables[tableIdx] as ResolvedTable
      const want = limit - records.length
      const current = tx
      const run: Run = committed ? async (q) => (await current.db.query<TextRow>(q)).rows : current.queryThenCommit
      const rows = await readTable(ctx, run, contract, t, afterId, want)
      for (const row of rows) {
        // Decision 35: a row too deeply nested to render is left out (and recorded), never fails the page.
        if (jsonTextDeeperThan(row.data, ctx.limits.maxJsonDepth)) {
          unrenderable.push({ table: t.tableName, id: row.id, operation: OP_INSERT })
          continue
        }
        records.push(textRecord(row.id, t.tableName, row.data, wireUpdatedAt(row)))
      }
      const lastRow = rows[rows.length - 1]
      if (rows.length === want && lastRow) {
        // The page is full: stay on this table even if it happens to be exhausted (§3 E 61); the next page finds out.
        next = { tableIdx, afterId: lastRow.id }
        break
      }
      tableIdx++
      afterId = ''
      if (!committed && tableIdx < ctx.tables.length) {
        // The first statement committed with the transaction: the rest of the page runs in a second one.
        committed = true
        tx = await open()
        if (tx.contract !== contract) {
          // DDL in between: end the page here; the next page request meets the new schema (409).
          next = { tableIdx, afterId: '' }
          break
        }
      }
    }
  } catch (err) {
    await tx.abort()
    throw err
  }
  await tx.commit() // a no-op when the page's statement already committed

  const out: SnapshotResponse = {
    records,
    checkpoint,
    has_more: next !== undefined,
    schema_version: contract.version,
    schema_hash: contract.hash,
  }
  if (next) {
    out.cursor = { checkpoint, table_idx: next.tableIdx, after_id: next.afterId }
  } else {
    // Committing the read-only page started the commit phase (openRequest): this write is part of it.
    await completeSnapshot(ctx.pool, client.id, checkpoint)
  }
  await recordUnrenderable(ctx, unrenderable)
  ctx.logger.debug({ records: records.length, final: next === undefined }, 'snapshot page served')
  return out
}

/** A row of `readTable`: `data` is the JSON text PostgreSQL rendered (passed through to the response, see record.ts). */
interface TextRow {
  id: string
  data: string
  updated_at: string | null
}

/**
 * Up to `limit` live rows of `t` the caller may read (Decision 5), after `afterId` in keyset order. One row per
 * record: node-pg's per-row parsing measured faster than one aggregated JSON text (string_agg / json_agg, +30 %).
 */
async function readTable(
  ctx: EngineContext,
  run: Run,
  contract: SchemaContract,
  t: ResolvedTable,
  afterId: string,
  limit: number,
): Promise<TextRow[]> {
  const keyset = keysetFor(t, idTypeOf(t, contract))
  const where = [`${ROW_ALIAS}.${t.q.deletedAt} IS NULL`]
  const read = accessPredicate(ctx.registry, t, 'read', ROW_ALIAS, contractColumnTypes(contract))
  if (read) where.push(read)
  const params: unknown[] = [limit]
  if (afterId !== '') {
    params.push(afterId)
    where.push(keyset.after('$2', afterId))
  }
  // Render JSON only for the rows of the page: the inner query pages by the key, the outer one renders.
  return run({
    text: `SELECT ${recordColumnsSql(t, contract, ROW_ALIAS, { deletedAt: false })}
       FROM (SELECT ${ROW_ALIAS}.*
               FROM ${t.sqlName} ${ROW_ALIAS}
              WHERE ${where.join('\n                AND ')}
              ORDER BY ${keyset.order}
              LIMIT $1) ${ROW_ALIAS}
      ORDER BY ${keyset.order}`,
    values: params,
    types: JSON_TEXT_TYPES,
  })
}
