/**
 * Retry with exponential backoff and jitter (PROTOCOL.md §4.4, Decision 25).
 */
import { isRetryable, ServerError } from '../errors.js'

/** Injectable clock and timers, so tests can drive time. */
export interface Timers {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
}

/** Upper bound of the exponential base, in seconds. */
export const MAX_BACKOFF_BASE_S = 16

/**
 * Delay before retry number `retry` (1-based) in milliseconds: the server's Retry-After when it gave one, else
 * `min(2^(retry−1), 16)` s plus 0–50 % jitter (`random()` in [0, 1)).
 */
export function backoffDelayMs(retry: number, retryAfterSeconds: number, random: () => number): number {
  if (retryAfterSeconds > 0) return Math.round(retryAfterSeconds * 1000)
  const base = Math.min(2 ** Math.max(0, retry - 1), MAX_BACKOFF_BASE_S)
  return Math.round(base * (1 + 0.5 * random()) * 1000)
}

export interface RetryOptions {
  /** Retries after the first try. */
  maxRetryAttempts: number
  random: () => number
  /** Waits `ms`; rejects when the wait is cancelled (stop()). */
  sleep: (ms: number) => Promise<void>
  /** Called before each wait with the failure, the delay and the retry number (1-based). */
  onRetry?: (err: unknown, delayMs: number, retry: number) => void
}

/**
 * Runs `fn`, retrying retryable failures up to `maxRetryAttempts` times. Never sleeps after the final attempt: the
 * failure is thrown at once and the caller's next timer tick is the next try (Decision 25).
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt)
    } catch (err) {
      if (!isRetryable(err) || attempt >= opts.maxRetryAttempts) throw err
      const retryAfter = err instanceof ServerError ? err.retryAfter : 0
      const delay = backoffDelayMs(attempt + 1, retryAfter, opts.random)
      opts.onRetry?.(err, delay, attempt + 1)
      await opts.sleep(delay)
    }
  }
}
