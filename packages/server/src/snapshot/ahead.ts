import type { EngineContext } from '../core/context.js'
import { RequestDeadline } from '../limits/deadline.js'
import { errorFacts } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import { type AheadRows, type RowChunk, rowBytesOf, type TextRow } from './readahead.js'
import { openPage, readTable } from './table.js'

/** Rows of a page taken from read-ahead rows, what is left of them, and whether the table may continue after. */
export interface Taken {
  rows: TextRow[]
  rest: AheadRows
  more: boolean
}

/**
 * Up to `want` rows from `ahead`: when its rows run short and a background read of the next ones is under way, that
 * read is awaited and its rows appended first. A background read that failed leaves the rest to the database.
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
          pending: undefined,
        }
      : { ...a, pending: undefined }
  }
  const end = Math.min(a.rows.length, a.from + want)
  return { rows: a.rows.slice(a.from, end), rest: { ...a, from: end }, more: end < a.rows.length || !a.exhausted }
}

/**
 * Starts reading, in the background, the rows of table `tableIdx` after `afterId` that follow `rest` (the
 * configured read-ahead amount), so that they are ready when the client's pages reach them: PostgreSQL renders the
 * next rows while this process serves the current ones. Only when nothing is being read for `rest` yet, the table
 * goes on, the cache has room and no request waits for a pool connection. The read opens its own request
 * transaction (client row and schema checked as for a page; statement and lock timeouts of the cache's TTL) and gives
 * up, resolving undefined, on any failure or when the schema changed.
 */
export function prefetch(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version?: number; schema_hash?: string },
  rest: AheadRows,
  tableIdx: number,
  afterId: string,
): void {
  if (rest.pending || rest.exhausted || ctx.pool.waitingCount > 0) return
  const n = ctx.snapshotCache.aheadRows()
  if (n === 0 || ctx.snapshotCache.options.ttlMs <= 0) return
  rest.pending = (async (): Promise<RowChunk | undefined> => {
    // Bounded like a request: statement and lock timeouts of one TTL (rows not taken by then are dropped anyway).
    const tx = await openPage(ctx, userId, req, true, new RequestDeadline(ctx.snapshotCache.options.ttlMs))
    if (tx.contract !== rest.contract) {
      await tx.commit()
      return undefined
    }
    const t = ctx.tables[tableIdx] as ResolvedTable
    const rows = await readTable(ctx, tx.queryThenCommit, tx.contract, t, afterId, n)
    return { rows, exhausted: rows.length < n }
  })().catch((err: unknown) => {
    ctx.logger.debug({ err: errorFacts(err) }, 'snapshot read-ahead failed')
    return undefined
  })
}
