import type { WalTransaction } from '../changelog/changes.js'

/**
 * Committed source transactions waiting to be written, in commit order. Batches are whole transactions, at most
 * `maxEvents` changes (at least one transaction even if it alone exceeds that). Past `4 × maxEvents` queued changes
 * the replication stream is paused (the server then blocks on TCP), and resumed below half of that.
 */
export class BatchQueue {
  readonly #pending: WalTransaction[] = []
  #events = 0
  #paused = false
  readonly #highWater: number

  constructor(
    readonly maxEvents: number,
    readonly flow: { pause(): void; resume(): void },
  ) {
    this.#highWater = maxEvents * 4
  }

  get length(): number {
    return this.#pending.length
  }

  push(txn: WalTransaction): void {
    this.#pending.push(txn)
    this.#events += txn.changes.length
    if (!this.#paused && this.#events > this.#highWater) {
      this.#paused = true
      this.flow.pause()
    }
  }

  /**
   * Takes the next batch: whole transactions up to the size limit. A transaction spilled to disk (`spill`) is
   * always a batch of its own: it is written in parts inside one database transaction.
   */
  take(): WalTransaction[] | null {
    const p = this.#pending
    if (p.length === 0) return null
    let n = 0
    let events = 0
    if ((p[0] as WalTransaction).spill) n = 1
    else {
      while (n < p.length) {
        const t = p[n] as WalTransaction
        if (t.spill || (n > 0 && events + t.changes.length > this.maxEvents)) break
        events += t.changes.length
        n++
      }
    }
    this.#events -= events
    if (this.#paused && this.#events < this.#highWater / 2) {
      this.#paused = false
      this.flow.resume()
    }
    return p.splice(0, n)
  }

  /** Frees the spill files of transactions never written (the session ends). */
  dispose(): void {
    for (const t of this.#pending) t.spill?.dispose()
    this.#pending.length = 0
    this.#events = 0
  }

  /** The next batch would be a spilled transaction (which cannot be prepared ahead). */
  get nextIsSpilled(): boolean {
    return this.#pending[0]?.spill !== undefined
  }
}
