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
 */
export class RequestDeadline {
  readonly #at: number
  #expired = false
  #committing = false

  /** `timeoutMs` may be Infinity (no deadline). */
  constructor(timeoutMs: number) {
    this.#at = Date.now() + timeoutMs
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

/** Transaction-local timeouts for a request's transaction (statement and lock waits end with the deadline). */
export function deadlineSettings(deadline: RequestDeadline | undefined): { [name: string]: string } {
  const ms = deadline?.remainingMs() ?? Number.POSITIVE_INFINITY
  if (!Number.isFinite(ms)) return {}
  return { statement_timeout: String(ms), lock_timeout: String(ms) }
}
