import type { EngineContext } from '../core/context.js'
import { RequestDeadline } from '../limits/deadline.js'
import { errorFacts } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { type AheadRows, type BackgroundRead, type RowChunk, rowBytesOf, type TextRow } from './readahead.js'
import { boundAfter, openPage, readTable, readTableWire } from './table.js'

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
    const chunk = await a.pending.chunk
    a = chunk
      ? {
          ...a,
          rows: a.rows.slice(a.from).concat(chunk.rows),
          from: 0,
          exhausted: chunk.exhausted,
          rowBytes: Math.max(a.rowBytes, rowBytesOf(chunk.rows)),
          // The next read starts at this one's bound: it follows on unless this one stopped short of it.
          pending: chunk.cut || chunk.exhausted ? undefined : a.further,
          further: undefined,
        }
      : { ...a, pending: undefined, further: undefined }
  }
  const end = Math.min(a.rows.length, a.from + want)
  return { rows: a.rows.slice(a.from, end), rest: { ...a, from: end }, more: end < a.rows.length || !a.exhausted }
}

/**
 * Starts reading, in the background, the rows of table `tableIdx` that follow `rest` (whose last row is `afterId`),
 * so that they are ready when the client's pages reach them: PostgreSQL renders the next rows while this process
 * serves the current ones. With `parallel`, the rows after those are read at the same time on a second connection,
 * so that two backends render at once. Only when the table goes on, the cache has room (for a second read: more
 * room, `secondRead`) and no request waits for a pool connection.
 *
 * Each read covers a key range: it first finds the id `n` rows further on (`boundAfter`, the key index only) and
 * reads the live rows up to it; the next read starts at that bound. Ranges tile the table whatever rows are added
 * or deleted between the reads (separate transactions): nothing is skipped or served twice.
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
  const n = ctx.snapshotCache.aheadRows()
  if (n === 0 || ctx.snapshotCache.options.ttlMs <= 0) return
  const read = (from: Promise<string | null | undefined>) =>
    readRange(ctx, userId, req, rest.contract, ctx.tables[tableIdx] as ResolvedTable, from, n)
  // Only reads whose room the entry can reserve (`ReadAheadCache.put` refuses an entry larger than the cap, and its
  // reads would run for nothing, their rows unaccounted).
  const fits = (reads: number) => ctx.snapshotCache.fits(rest.rows.length - rest.from, reads, rest.rowBytes)
  if (!rest.pending) {
    if (!fits(1)) return
    rest.pending = read(Promise.resolve(afterId))
  }
  if (!rest.further && fits(2) && ctx.snapshotCache.secondRead()) rest.further = read(rest.pending.bound)
}

/**
 * A background read of up to `n` live rows of `t` after `from` (once known; nothing when it is null or undefined),
 * in its own request transaction: client row and schema checked as for a page (a client deactivated meanwhile ends
 * the read: the onStaleClient hook runs for the client's requests only), statement and lock timeouts of the cache's
 * TTL (rows not taken by then are dropped anyway). Any failure, or a schema change, resolves undefined.
 */
function readRange(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version?: number; schema_hash?: string },
  contract: SchemaContract,
  t: ResolvedTable,
  from: Promise<string | null | undefined>,
  n: number,
): BackgroundRead {
  let settle: (bound: string | null | undefined) => void = () => {}
  const bound = new Promise<string | null | undefined>((resolve) => {
    settle = resolve
  })
  const chunk = (async (): Promise<RowChunk | undefined> => {
    const after = await from
    // The second read asks for its connection only once the first knows its bound: not if requests wait by then.
    if (after == null || ctx.pool.waitingCount > 0) return undefined
    const tx = await openPage(ctx, userId, req, true, {
      deadline: new RequestDeadline(ctx.snapshotCache.options.ttlMs),
      background: true,
    })
    if (tx.contract !== contract) {
      await tx.commit()
      return undefined
    }
    let upTo: string | undefined
    try {
      upTo = await boundAfter(ctx, tx.db, contract, t, after, n)
    } catch (err) {
      await tx.abort()
      throw err
    }
    settle(upTo ?? null)
    let rows: TextRow[]
    let wire: TextRow[] | undefined
    try {
      wire = await readTableWire(ctx, tx.db, contract, t, after, n, upTo)
    } catch (err) {
      await tx.abort()
      throw err
    }
    if (wire) {
      rows = wire
      await tx.commit()
    } else rows = await readTable(ctx, tx.queryThenCommit, contract, t, after, n, upTo)
    const full = rows.length === n
    // One snapshot: the range holds at most `n` live rows, and without a bound the table ends within them.
    return { rows, exhausted: upTo === undefined && !full, cut: full && upTo !== undefined && rows[n - 1]?.id !== upTo }
  })().catch((err: unknown) => {
    ctx.logger.debug({ err: errorFacts(err) }, 'snapshot read-ahead failed')
    return undefined
  })
  void chunk.then(() => settle(undefined)) // a read that ended without a bound: the read after it does nothing
  return { bound, chunk }
}
