import type pg from 'pg'
import { SynchroError } from '../errors.js'

/** The request's deadline passed before its work could commit (answered 503 + Retry-After). */
export class DeadlineExceededError extends SynchroError {
  constructor() {
    super('deadline_exceeded', 'request deadline exceeded')
  }
}

/**
 * The deadline of one request, shared by the HTTP handler (which answers 503 when it expires) and the engine (which
 * must then not commit anything: the client was told "not done, retry"). A commit that already started is waited
 * for instead, so no answer ever contradicts what the database did.
 *
 * It bounds how long the request waits without progress: each database round trip of the request's transaction
 * that completes (`progress`) starts the period again. A database that stops answering is noticed within one period,
 * while a large push that keeps the database busy with many quick statements is not cut off half way (it would be
 * retried, and cut off, forever).
 */
export class RequestDeadline {
  #at: number
  #expired = false
  #committing = false

  /** `timeoutMs` may be Infinity (no deadline). */
  constructor(readonly timeoutMs: number) {
    this.#at = Date.now() + timeoutMs
  }

  /** A database round trip completed: the request is alive, the period starts again. */
  progress(): void {
    if (!this.#expired) this.#at = Date.now() + this.timeoutMs
  }

  /** Milliseconds left (at least 1; Infinity without a deadline): the request's statement / lock timeout. */
  remainingMs(): number {
    return Math.max(1, Math.ceil(this.#at - Date.now()))
  }

  /** The handler's timer: true when the request may be answered 503 now; false while a commit is under way. */
  expire(): boolean {
    if (this.#committing) return false
    this.#expired = true
    return true
  }

  get expired(): boolean {
    return this.#expired
  }

  /** Throws DeadlineExceededError once the request was answered 503 (its work must stop and roll back). */
  check(): void {
    if (this.#expired) throw new DeadlineExceededError()
  }

  /** Call right before COMMIT (or any bookkeeping write): throws when expired, else holds the answer for it. */
  beginCommit(): void {
    this.check()
    this.#committing = true
  }
}

/** Options every engine request method accepts. */
export interface RequestOptions {
  /** Set by createSyncHandler; library callers may pass their own. */
  deadline?: RequestDeadline
}

/** Transaction-local timeouts for a request's transaction: no statement or lock wait outlasts one period. */
export function deadlineSettings(deadline: RequestDeadline | undefined): { [name: string]: string } {
  const ms = deadline?.timeoutMs ?? Number.POSITIVE_INFINITY
  if (!Number.isFinite(ms)) return {}
  return { statement_timeout: String(ms), lock_timeout: String(ms) }
}

/**
 * Reports every completed query of `db` (a connection checked out for one request) as progress of `deadline`.
 * Returns the function that stops it; call it before the connection goes back to the pool.
 */
export function watchProgress(db: pg.PoolClient, deadline: RequestDeadline | undefined): () => void {
  if (!deadline) return () => {}
  const query = db.query
  const done = () => deadline.progress()
  const watched = (...args: unknown[]): unknown => {
    const result = (query as (...a: unknown[]) => unknown).apply(db, args)
    if (result instanceof Promise) result.then(done, done)
    return result
  }
  db.query = watched as typeof db.query
  return () => {
    db.query = query
  }
}
