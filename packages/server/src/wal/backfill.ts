import type pg from 'pg'
import { type BackfillChunk, type BackfillWatch, backfillProgress, readChunk } from '../buckets/backfill.js'
import type { BucketResolver } from '../buckets/resolver.js'
import type { WalTransaction } from '../changelog/changes.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { Logger } from '../util/log.js'

/** What the backfill of a leader session needs of it. */
export interface BackfillHost {
  readonly pool: pg.Pool
  readonly resolver: BucketResolver
  readonly watch: BackfillWatch
  /** Keys per chunk. */
  readonly chunkRows: number
  readonly log: Logger
  report(err: unknown): void
  /** Queues a chunk behind the transactions queued so far (its place in the stream). */
  push(txn: WalTransaction): void
  /** The tables still to do changed. */
  pending(tables: string[]): void
}

/** Pause after a chunk read failed, doubled up to a minute while it keeps failing. */
const RETRY_MS = 1_000

/**
 * Gives edges to the rows of a leader session's registered tables that the capture never saw written (see
 * buckets/backfill.ts), one chunk at a time: read in one snapshot, queued once the stream is past the chunk's WAL
 * position, applied by the batch that takes it. It starts once the capture has written the backlog it found at the
 * session's start (a chunk waits for the stream anyway; read earlier, most of its rows would be touched by then).
 * Progress is read back from the database after each chunk: a chunk that did not apply is read again.
 */
export class EdgeBackfill {
  #tables: ResolvedTable[]
  #stopped = false
  #loop: Promise<void> | undefined
  /** Every transaction that ends at or before this position has been queued. */
  #seen = 0n
  /** The chunk waiting for its place in the stream or for its batch to commit. */
  #waiting: { chunk: BackfillChunk; queued: boolean; settle: () => void } | null = null
  #sleep: { timer: NodeJS.Timeout; wake: () => void } | null = null

  constructor(
    readonly host: BackfillHost,
    tables: readonly ResolvedTable[],
    /** The end of the backlog the session started with (a WAL record written at its start). */
    readonly startAfter: bigint,
  ) {
    this.#tables = [...tables]
  }

  /** Tables whose rows are not all given edges yet. */
  get tables(): string[] {
    return this.#tables.map((t) => t.tableName)
  }

  /** A chunk is read and waits for the stream to pass its position. */
  get waitingForStream(): boolean {
    return this.#waiting !== null && !this.#waiting.queued
  }

  /** The durable position moved: the backfill starts once it reaches the backlog's end. */
  durable(lsn: bigint | null): void {
    if (this.#loop || this.#stopped || this.#tables.length === 0 || lsn === null || lsn < this.startAfter) return
    this.#loop = this.#run().catch((err: unknown) => {
      if (!this.#stopped) this.host.report(err)
    })
  }

  /** The stream is past `lsn`: a commit ending there was queued, or a keepalive said the server sent all before it. */
  saw(lsn: bigint): void {
    if (lsn > this.#seen) this.#seen = lsn
    const w = this.#waiting
    if (!w || w.queued || w.chunk.lsn > this.#seen) return
    w.queued = true
    this.host.push({ endLsn: 0n, changes: [], backfill: w.chunk })
  }

  /** A batch committed: the chunk it carried is applied (or found not to apply). */
  applied(txns: readonly WalTransaction[]): void {
    const w = this.#waiting
    if (w && txns.some((t) => t.backfill === w.chunk)) w.settle()
  }

  /** Stops after the chunk read under way (a chunk not applied yet is read again by a later session). */
  async stop(): Promise<void> {
    this.#stopped = true
    this.#waiting?.settle()
    if (this.#sleep) {
      clearTimeout(this.#sleep.timer)
      this.#sleep.wake()
    }
    await this.#loop
  }

  async #run(): Promise<void> {
    this.host.log.info({ tables: this.tables }, 'wal: giving edges to rows the capture did not see written')
    while (!this.#stopped && this.#tables.length > 0) {
      const t = this.#tables[0] as ResolvedTable
      const done = await this.#table(t)
      if (this.#stopped || !done) return
      this.#tables.shift()
      this.host.pending(this.tables)
    }
    if (!this.#stopped) this.host.log.info({}, 'wal: every registered row has its bucket edges')
  }

  /** Backfills one table; true once it is done (or no longer has a progress row). */
  async #table(t: ResolvedTable): Promise<boolean> {
    const t0 = performance.now()
    const total = { chunks: 0, scanned: 0, edged: 0, failed: 0 }
    let retry = RETRY_MS
    for (;;) {
      if (this.#stopped) return false
      const touched = this.host.watch.open(t.tableName)
      try {
        const p = await backfillProgress(this.host.pool, t.tableName)
        if (!p || p.done) break
        const { chunk, facts } = await readChunk(
          this.host.pool,
          this.host.resolver,
          t,
          p.after,
          this.host.chunkRows,
          touched,
        )
        retry = RETRY_MS
        if (this.#stopped) return false
        await this.#apply(chunk)
        if (chunk.added !== undefined) {
          total.chunks++
          total.scanned += facts.scanned
          total.edged += chunk.added
          total.failed += facts.failed
        }
      } catch (err) {
        if (this.#stopped) return false
        this.host.report(err)
        await this.#pause(retry)
        retry = Math.min(retry * 2, 60_000)
      } finally {
        touched.close()
      }
    }
    const ms = Math.round(performance.now() - t0)
    this.host.log.info({ table: t.tableName, ...total, ms }, 'wal: rows of a table given their bucket edges')
    return true
  }

  /** Waits until the chunk's batch committed (or the session ends). */
  #apply(chunk: BackfillChunk): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#waiting = {
        chunk,
        queued: false,
        settle: () => {
          this.#waiting = null
          resolve()
        },
      }
      if (this.#stopped) this.#waiting.settle()
      else this.saw(this.#seen)
    })
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.#sleep = null
        resolve()
      }
      this.#sleep = { timer: setTimeout(wake, ms), wake }
    })
  }
}
