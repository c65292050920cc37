import type { EngineContext } from '../core/context.js'
import { RequestDeadline } from '../limits/deadline.js'
import { errorFacts } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { type AheadRows, type LaterChunk, type RowChunk, rowBytesOf, type TextRow } from './readahead.js'
import { openPage, readTable, rowAfter } from './table.js'

/** Rows of a page taken from read-ahead rows, what is left of them, and whether the table may continue after. */
export interface Taken {
  rows: TextRow[]
  rest: AheadRows
  more: boolean
}

/**
 * Up to `want` rows from `ahead`: when its rows run short and a background read of the next ones is under way, that
 * read is awaited and its rows appended first; the read after it (if any) becomes the one under way. A background
 * read that failed leaves the rest to the database.
 */
export async function takeAhead(ahead: AheadRows, want: number): Promise<Taken> {
  let a = ahead
  if (a.rows.length - a.from < want && !a.exhausted && a.pending) {
    const chunk = await a.pending
    a = chunk
      ? {
          ...a,
          rows: a.rows.slice(a.from).concat(chunk.rows),
          from: 0,
          exhausted: chunk.exhausted,
          rowBytes: Math.max(a.rowBytes, rowBytesOf(chunk.rows)),
          pending: following(a.further, chunk),
          further: undefined,
        }
      : { ...a, pending: undefined, further: undefined }
  }
  const end = Math.min(a.rows.length, a.from + want)
  return { rows: a.rows.slice(a.from, end), rest: { ...a, from: end }, more: end < a.rows.length || !a.exhausted }
}

/**
 * The read that went on after `chunk`, as the read under way once `chunk` is appended. Its rows are used only if they
 * start exactly at `chunk`'s last row: the two reads ran in separate transactions, and a row of the range added or
 * deleted in between moves the point where the second one started (a gap or an overlap). Then the database serves
 * those rows instead.
 */
function following(further: Promise<LaterChunk | undefined> | undefined, chunk: RowChunk) {
  const last = chunk.rows[chunk.rows.length - 1]
  if (!further || chunk.exhausted || !last) return undefined
  return further.then((later) => (later?.after === last.id ? later : undefined))
}

/**
 * Starts reading, in the background, the rows of table `tableIdx` after `afterId` (the last of `rest`'s rows) that
 * follow `rest` (the configured read-ahead amount), so that they are ready when the client's pages reach them:
 * PostgreSQL renders the next rows while this process serves the current ones. With `parallel`, the amount after
 * those is read at the same time on a second connection, so that two backends render at once. Only when the table
 * goes on, the cache has room and no request waits for a pool connection. Each read opens its own request
 * transaction (client row and schema checked as for a page; statement and lock timeouts of the cache's TTL) and
 * gives up, resolving undefined, on any failure or when the schema changed.
 */
export function prefetch(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version?: number; schema_hash?: string },
  rest: AheadRows,
  tableIdx: number,
  afterId: string,
): void {
  if (rest.exhausted || ctx.pool.waitingCount > 0) return
  const { options } = ctx.snapshotCache
  const n = ctx.snapshotCache.aheadRows()
  if (n === 0 || options.ttlMs <= 0) return
  const read = (skip: number) => readInBackground(ctx, userId, req, rest.contract, tableIdx, afterId, n, skip)
  rest.pending ??= read(0)
  // `pending` reads the n rows after `afterId` (or, taken over from an earlier `further`, is reading them now).
  if (options.parallel && !rest.further && ctx.pool.waitingCount === 0) rest.further = read(n)
}

/** `n` rows of the table after the `skip`-th row after `afterId` (after `afterId` itself when `skip` is 0). */
function readInBackground(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version?: number; schema_hash?: string },
  contract: SchemaContract,
  tableIdx: number,
  afterId: string,
  n: number,
  skip: number,
): Promise<LaterChunk | undefined> {
  return (async (): Promise<LaterChunk | undefined> => {
    // Bounded like a request: statement and lock timeouts of one TTL (rows not taken by then are dropped anyway).
    const deadline = new RequestDeadline(ctx.snapshotCache.options.ttlMs)
    const tx = await openPage(ctx, userId, req, true, deadline)
    const t = ctx.tables[tableIdx] as ResolvedTable
    let after: string | undefined = afterId
    try {
      if (tx.contract === contract && skip > 0) after = await rowAfter(ctx, tx.db, contract, t, afterId, skip)
    } catch (err) {
      await tx.abort()
      throw err
    }
    if (tx.contract !== contract || after === undefined) {
      await tx.commit()
      return undefined
    }
    const rows = await readTable(ctx, tx.queryThenCommit, contract, t, after, n)
    return { after, rows, exhausted: rows.length < n }
  })().catch((err: unknown) => {
    ctx.logger.debug({ err: errorFacts(err) }, 'snapshot read-ahead failed')
    return undefined
  })
}
