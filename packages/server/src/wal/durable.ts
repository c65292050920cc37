import { WalError } from './errors.js'
import { bigintToLsn } from './lsn.js'

interface Waiter {
  lsn: bigint
  resolve: () => void
}

/** The highest LSN known durable (applied, or irrelevant to us), and the callers waiting for one to be reached. */
export class DurablePosition {
  #lsn: bigint | null = null
  #waiters: Waiter[] = []

  get lsn(): bigint | null {
    return this.#lsn
  }

  /** Moves the position forward (never back) and wakes the waiters it reaches. */
  advance(lsn: bigint): void {
    if (this.#lsn !== null && lsn <= this.#lsn) return
    this.#lsn = lsn
    if (this.#waiters.length === 0) return
    const ready = this.#waiters.filter((w) => w.lsn <= lsn)
    this.#waiters = this.#waiters.filter((w) => w.lsn > lsn)
    for (const w of ready) w.resolve()
  }

  /** Resolves once the position reaches `target`; rejects after `timeoutMs`. */
  waitFor(target: bigint, timeoutMs: number): Promise<void> {
    if (this.#lsn !== null && this.#lsn >= target) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        lsn: target,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
      }
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w)
        reject(new WalError('wal_timeout', `LSN ${bigintToLsn(target)} not reached within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#waiters.push(w)
    })
  }
}
