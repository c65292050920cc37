/** Bounds on in-flight work (docs/configuration.md, "Limits"); 0 or Infinity turns a bound off. */
export interface AdmissionLimits {
  /** Requests being served at once, all users together (beyond → 503). */
  maxInFlight: number
  /** Requests being served at once for one user (beyond → 429). */
  maxInFlightPerUser: number
  /** Request body bytes held in memory at once, all requests together (beyond → 503). */
  maxBodyBytesInFlight: number
}

export const DEFAULT_ADMISSION: AdmissionLimits = {
  maxInFlight: 256,
  maxInFlightPerUser: 8,
  maxBodyBytesInFlight: 16 * 1024 * 1024,
}

/** One admitted request: holds its slots and body bytes until `release` (when its work ends, not its answer). */
export interface Ticket {
  /** Reserves `bytes` more of the body budget; false when the budget is exhausted (answer 503). */
  reserve(bytes: number): boolean
  release(): void
}

const bounded = (n: number) => Number.isFinite(n) && n > 0

/**
 * Admission control: a request is admitted only while the global and per-user counts are under their bounds, and its
 * body is read only while the byte budget has room. Slots are held until the request's work settles, so work left
 * running behind an answered deadline (a stalled database) still counts and cannot pile up.
 */
export class Admission {
  #inFlight = 0
  #bytes = 0
  readonly #perUser = new Map<string, number>()

  constructor(readonly limits: AdmissionLimits) {}

  /** A ticket, or which bound refused the request. */
  enter(userId: string): Ticket | 'user' | 'global' {
    const l = this.limits
    const mine = this.#perUser.get(userId) ?? 0
    if (bounded(l.maxInFlightPerUser) && mine >= l.maxInFlightPerUser) return 'user'
    if (bounded(l.maxInFlight) && this.#inFlight >= l.maxInFlight) return 'global'
    this.#inFlight++
    this.#perUser.set(userId, mine + 1)
    let held = 0
    let released = false
    return {
      reserve: (bytes) => {
        if (released || bytes <= 0) return true
        // A request alone (nobody else holds bytes) is always allowed: the body limit bounds it.
        const others = this.#bytes - held
        if (bounded(l.maxBodyBytesInFlight) && others > 0 && this.#bytes + bytes > l.maxBodyBytesInFlight) {
          return false
        }
        this.#bytes += bytes
        held += bytes
        return true
      },
      release: () => {
        if (released) return
        released = true
        this.#inFlight--
        this.#bytes -= held
        const left = (this.#perUser.get(userId) ?? 1) - 1
        if (left <= 0) this.#perUser.delete(userId)
        else this.#perUser.set(userId, left)
      },
    }
  }

  /** Current counts (metrics, tests). */
  stats(): { inFlight: number; bodyBytes: number; users: number } {
    return { inFlight: this.#inFlight, bodyBytes: this.#bytes, users: this.#perUser.size }
  }
}
