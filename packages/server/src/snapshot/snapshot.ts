import { clampLimit, type SnapshotRequest, type SnapshotResponse } from '@synchro/protocol'
import { snapshotHeadSeq } from '../changelog/reader.js'
import { completeSnapshot } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { BadRequestError } from '../errors.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { recordUnrenderable, rejectNul } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { RequestTx } from '../request/open.js'
import { prefetch, type Taken, takeAhead } from './ahead.js'
import { type AheadRows, rowBytesOf, type TextRow } from './readahead.js'
import { addRecords, clearRecords, type PageRecords, setRecords } from './records.js'
import { isTableRewritten, openPage, type Run, readTable } from './table.js'

/**
 * POST /sync/snapshot (PROTOCOL.md §1.5, §3 E; Decisions 5, 7, 14). Stateless on the wire: the cursor {checkpoint,
 * table_idx, after_id} says where the next page starts. Each page reads in its own REPEATABLE READ transaction: the
 * pages of one snapshot are *not* one MVCC snapshot, which is fine because every change committed after the captured
 * checkpoint reaches the client again through pull (records are idempotent upserts).
 *
 * Read-ahead (`ctx.snapshotCache`): after a page, background reads (`prefetch`) fetch the rows that follow it and
 * leave them for the next page of the same user, client and cursor. Such a page still runs the opening
 * statement (client row, schema fingerprint; 404/409/403 exactly as any page) — without a transaction, one round
 * trip — and is then served from memory if the rows were rendered under the current contract. Rows read a little
 * earlier are rows that page could have read then: they are newer than the checkpoint, and later changes reach the
 * client through pull as always.
 *
 * Round trips of a page read from the database: BEGIN with the opening statement, then the page's first table
 * statement *together with COMMIT* (nearly every page is filled by one table; the first page also reads max(seq)). A
 * page that reaches the end of a table continues in a second transaction (opened the same way) with one statement per
 * further table, then COMMIT.
 */
export async function snapshot(
  ctx: EngineContext,
  userId: string,
  req: SnapshotRequest,
  deadline?: RequestDeadline,
): Promise<SnapshotResponse> {
  // A table rewritten while the page read it (table.ts, `notRewritten`): once more, on a fresh snapshot. Twice in a
  // row is a busy migration: the client retries later (40001 → 503).
  for (let attempt = 1; ; attempt++) {
    try {
      return await snapshotPage(ctx, userId, req, deadline)
    } catch (err) {
      if (!isTableRewritten(err)) throw err
      if (attempt === 2)
        throw Object.assign(new Error('snapshot: table rewritten twice', { cause: err }), { code: '40001' })
    }
  }
}

/** One attempt at a snapshot page (see `snapshot`). */
async function snapshotPage(
  ctx: EngineContext,
  userId: string,
  req: SnapshotRequest,
  deadline?: RequestDeadline,
): Promise<SnapshotResponse> {
  rejectNul([req.client_id, req.cursor?.after_id])
  const limit = clampLimit(req.limit)
  const cursor = req.cursor
  const cache = ctx.snapshotCache
  // A page that goes on in a second transaction does not put its client to the onStaleClient hook again.
  let opened = false
  const open = async (transaction: boolean) => {
    const tx = await openPage(ctx, userId, req, transaction, { deadline, staleAccepted: opened })
    opened = true
    return tx
  }
  const page: PageRecords = { segments: [], count: 0, unrenderable: [] }
  const cached = cursor ? cache.take(userId, req.client_id, cursor) : undefined
  let tx: RequestTx
  let taken: Taken | undefined // the page's rows taken from read-ahead rows (in `page` already)
  if (cached && cursor) {
    ;({ tx, taken } = await fromAhead(ctx, open(false), cached, ctx.tables[cursor.table_idx], limit, page))
  } else {
    tx = await open(true)
  }
  // `first`: a transaction whose first table statement commits it; `open`: one that commits at the end; `none`: none.
  let mode: 'first' | 'open' | 'none' = cached === undefined ? 'first' : 'none'
  const { contract, client } = tx
  let checkpoint = 0
  let next: { tableIdx: number; afterId: string } | undefined
  let rest: AheadRows | undefined
  try {
    if (cursor && (cursor.table_idx < 0 || cursor.checkpoint < 0)) throw new BadRequestError('invalid cursor')
    // Decision 7: the changelog head (never below the retention boundary), captured once on the first page; later
    // pages carry it in the cursor (even 0).
    checkpoint = cursor ? cursor.checkpoint : await snapshotHeadSeq(tx.db)
    let tableIdx = cursor?.table_idx ?? 0
    let afterId = cursor?.after_id ?? ''
    while (tableIdx < ctx.tables.length) {
      const t = ctx.tables[tableIdx] as ResolvedTable
      const want = taken ? limit : limit - page.count // `taken`'s records are in `page` already
      let rows: TextRow[]
      let more: boolean // the table may have rows after `rows`
      if (taken) {
        ;({ rows, rest, more } = taken)
        taken = undefined
      } else {
        if (mode === 'none') {
          await tx.commit()
          tx = await open(true)
          mode = 'open'
          if (tx.contract !== contract) {
            // DDL in between: end the page here; the next page request meets the new schema (409).
            next = { tableIdx, afterId }
            rest = undefined
            break
          }
        }
        const current = tx
        const run: Run =
          mode === 'first' ? current.queryThenCommit : async (q) => (await current.db.query<TextRow>(q)).rows
        if (mode === 'first') mode = 'none'
        // The page's own rows only: the rows after them come from background reads (`prefetch`), rendered in this
        // process — cheaper for both sides than the SQL rendering (≈ 70 ms of PostgreSQL's time per 10k rows of the
        // benchmark's table against ≈ 35 ms), and under way while this page is answered.
        rows = await readTable(ctx, run, contract, t, afterId, want)
        rest = { contract, rows, from: rows.length, exhausted: rows.length < want, rowBytes: rowBytesOf(rows) }
        more = false // a read that did not fill the page reached the end of the table
        addRecords(ctx, t, rows, page)
      }
      const lastRow = rows[rows.length - 1]
      if (rows.length === want && lastRow) {
        // The page is full: stay on this table even if it happens to be exhausted (§3 E 61); the next page finds out.
        next = { tableIdx, afterId: lastRow.id }
        break
      }
      if (more) {
        // Read-ahead rows ran out before the page was full: the rest of the page comes from the database.
        afterId = lastRow?.id ?? afterId
        continue
      }
      tableIdx++
      afterId = ''
    }
  } catch (err) {
    await tx.abort()
    throw err
  }
  await tx.commit() // a no-op when the page's statement already committed

  const out: SnapshotResponse = {
    records: [], // set below (setRecords), in its place among the keys
    checkpoint,
    has_more: next !== undefined,
    schema_version: contract.version,
    schema_hash: contract.hash,
  }
  setRecords(out, page)
  if (next) {
    out.cursor = { checkpoint, table_idx: next.tableIdx, after_id: next.afterId }
    if (rest) {
      // Not for a deactivated client: its reads would be refused (the onStaleClient hook is for its requests only).
      if (client.isActive) prefetch(ctx, userId, req, rest, next.tableIdx, lastIdOf(rest))
      cache.put(userId, req.client_id, out.cursor, rest)
    }
  } else {
    // Committing the read-only page started the commit phase (openRequest): this write is part of it.
    await completeSnapshot(ctx.pool, client.id, checkpoint)
  }
  await recordUnrenderable(ctx, page.unrenderable)
  ctx.logger.debug({ records: page.count, final: next === undefined }, 'snapshot page served')
  return out
}

/**
 * A page that starts on read-ahead rows: their records are added while the opening statement (`opening`, already
 * started) is on its way — nothing is answered before it succeeds, its error is the page's error. When the rows were
 * rendered under another contract than the current one they are dropped and the page reads from the database.
 */
async function fromAhead(
  ctx: EngineContext,
  opening: Promise<RequestTx>,
  cached: AheadRows,
  t: ResolvedTable | undefined,
  limit: number,
  page: PageRecords,
): Promise<{ tx: RequestTx; taken: Taken | undefined }> {
  opening.catch(() => {}) // awaited below; not an unhandled rejection meanwhile
  await new Promise((resolve) => setImmediate(resolve)) // lets the opening statement go out first
  let taken: Taken | undefined
  if (t) {
    taken = await takeAhead(cached, limit)
    addRecords(ctx, t, taken.rows, page)
  }
  const tx = await opening
  if (tx.contract !== cached.contract) {
    clearRecords(page)
    taken = undefined
  }
  return { tx, taken }
}

/** The id of the last row `rest` holds (the cursor a read of the rows after them continues from). */
function lastIdOf(rest: AheadRows): string {
  return (rest.rows[rest.rows.length - 1] as TextRow).id
}
