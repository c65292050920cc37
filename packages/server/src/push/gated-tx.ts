import type pg from 'pg'
import { DeadlineExceededError, type RequestDeadline, watchProgress } from '../limits/deadline.js'
import type { CommitQuery } from '../request/open.js'
import { CommitMiss, isDatabaseError } from './commit.js'
import { DeferredOpening } from './opening.js'
import { resyncAllPrepared } from './roundtrip.js'

/**
 * The transaction of a gated push (gate.ts) on its pool connection: its opening rides with the first statement
 * (opening.ts), the last write may carry COMMIT (`commit`, commit.ts's FinalCommit), and every way out releases the
 * connection exactly once.
 *
 * Under a finite deadline nothing commits in the round trip that carries the opening (as request/gated.ts does for a
 * pull page): once a COMMIT is sent the request waits for its answer (`beginCommit`), so a database that stalls on
 * the opening must still be answered 503 and its late transaction rolled back. A push of creates then sends the
 * opening on its own at once (`sendOpeningEarly`), and its write with COMMIT once the opening is answered; without a
 * deadline (a library call) the three go in one round trip.
 */
export class GatedTx {
  readonly opening: DeferredOpening
  readonly #unwatch: () => void
  readonly #bounded: boolean
  #ended = false

  constructor(
    readonly db: pg.PoolClient,
    readonly deadline: RequestDeadline | undefined,
    opening: [text: string, results: number],
  ) {
    this.#unwatch = watchProgress(db, deadline)
    this.#bounded = deadline !== undefined && Number.isFinite(deadline.timeoutMs)
    this.opening = new DeferredOpening(db, ...opening)
  }

  /** The last write and COMMIT (commit.ts): in one round trip unless the opening would ride with them under a deadline. */
  readonly commit = async <R extends object>(query: CommitQuery): Promise<R[]> => {
    const { db, deadline } = this
    if (deadline?.expired) throw new DeadlineExceededError()
    if (this.#bounded && !this.opening.sent) {
      const answer = (await db.query({ text: query.text, types: query.types })) as unknown
      const rows = ((Array.isArray(answer) ? answer.at(-1) : answer) as pg.QueryResult<R>).rows
      deadline?.beginCommit() // answered 503 meanwhile: throws, and the transaction rolls back
      await db.query('COMMIT')
      this.#release()
      return rows
    }
    // An opening sent on its own (`sendOpeningEarly`) is answered before anything commits: a stall there is a 503.
    if (this.#bounded) await this.opening.send()
    deadline?.beginCommit()
    const results = (await db.query({ text: `${query.text};\nCOMMIT`, types: query.types })) as unknown
    this.#release()
    const all = results as pg.QueryResult<R>[]
    return all[all.length - 2]?.rows ?? []
  }

  /**
   * Under a finite deadline, sends the opening now, on its own, and returns the round trip (see DeferredOpening.send):
   * a push whose first statement would be its write (creates) lets PostgreSQL run the opening while the records are
   * validated and decided here, and its write then carries COMMIT — two round trips as before (opening with the
   * write, then COMMIT), with the opening's database time no longer on the push's path. Undefined otherwise.
   */
  sendOpeningEarly(): Promise<void> | undefined {
    if (!this.#bounded || this.opening.sent) return undefined
    const alone = this.opening.send()
    alone.catch(() => {}) // awaited by whoever goes on (commit, end, the push's error path)
    return alone
  }

  /** Ends the transaction (unless the last write committed it). `discard`: the connection is not reused. */
  async end(command: 'COMMIT' | 'ROLLBACK', discard = false): Promise<void> {
    if (this.#ended) return
    // Nothing was written (every record refused): the opening still runs (the gate marks the push), before COMMIT.
    if (command === 'COMMIT' && this.#bounded) await this.opening.send()
    this.#ended = true
    const { db, deadline } = this
    const expired = command === 'COMMIT' && deadline?.expired === true
    if (command === 'COMMIT' && !expired) deadline?.beginCommit()
    let failed: { err: unknown } | undefined
    try {
      await db.query(expired ? 'ROLLBACK' : command)
    } catch (err) {
      failed = { err }
      if (command === 'COMMIT') await db.query('ROLLBACK').catch(() => {})
    }
    this.#unwatch()
    db.release(failed || discard ? true : undefined)
    if (expired) throw new DeadlineExceededError()
    if (failed && command === 'COMMIT') throw failed.err
  }

  /**
   * After `err` ended the push: rolls back and releases. A database error (a closed gate, a bad record in the first
   * batch) leaves the connection sound, with only this process's record of its prepared statements in doubt (a PREPARE
   * after the error never ran): that record is read back and the connection kept. Anything else discards it.
   */
  async abandon(err: unknown): Promise<void> {
    this.opening.restore()
    if (this.#ended) return
    const cause = err instanceof CommitMiss ? err.cause : err
    if (isDatabaseError(cause) && (cause as { code?: string }).code !== '26000') {
      try {
        await this.db.query('ROLLBACK')
        await resyncAllPrepared(this.db)
        this.#release()
        return
      } catch {
        // the connection is not sound after all: discarded below
      }
    }
    await this.end('ROLLBACK', true).catch(() => {})
  }

  #release(): void {
    this.#ended = true
    this.#unwatch()
    this.db.release()
  }
}
