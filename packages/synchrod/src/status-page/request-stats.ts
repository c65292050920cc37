/**
 * Per-route request rates and latency over a sliding window, plus a short history of the overall request rate —
 * what the status page shows and charts. Process-local (each instance counts its own requests), bounded memory.
 */

/** Requests counted per route for rates and percentiles. */
const WINDOW_MS = 60_000
/** Newest samples kept per route (percentiles over a busy minute use the newest ones). */
const MAX_SAMPLES = 2_000
/** History: one point per `everyMs`, this many points (5 minutes at 2 s). */
const HISTORY_POINTS = 150
/** A lag reading older than this is not carried into a history point (the page reads it every 2 s while open). */
const LAG_FRESH_MS = 5_000

export interface RouteStats {
  route: string
  /** Requests per second over the last minute. */
  perSecond: number
  /** Requests answered since the process started. */
  total: number
  /** Latency percentiles over the last minute, in milliseconds (null without requests). */
  p50Ms: number | null
  p95Ms: number | null
  /** Answers with a 5xx status in the last minute. */
  errors: number
}

export interface HistoryPoint {
  /** Unix time in milliseconds. */
  t: number
  /** Requests per second (all routes) since the previous point. */
  requestsPerSecond: number
  /** Replication slot lag in bytes when a status report was read around then, else null. */
  lagBytes: number | null
}

interface Sample {
  at: number
  ms: number
  error: boolean
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? null
}

export class RequestStats {
  readonly #routes = new Map<string, { total: number; samples: Sample[] }>()
  readonly #history: HistoryPoint[] = []
  #count = 0
  #lastCount = 0
  #lastAt: number
  #lag: { at: number; bytes: number | null } | null = null

  constructor(private readonly now: () => number = Date.now) {
    this.#lastAt = now()
  }

  record(route: string, durationMs: number, status: number): void {
    let r = this.#routes.get(route)
    if (!r) {
      r = { total: 0, samples: [] }
      this.#routes.set(route, r)
    }
    r.total++
    r.samples.push({ at: this.now(), ms: durationMs, error: status >= 500 })
    if (r.samples.length > MAX_SAMPLES) r.samples.splice(0, r.samples.length - MAX_SAMPLES)
    this.#count++
  }

  /** Remembers the latest slot lag so the next history point carries it. */
  noteLag(bytes: number | null): void {
    this.#lag = { at: this.now(), bytes }
  }

  /** Closes one history point (called by a timer every few seconds). */
  tick(): void {
    const now = this.now()
    const secs = Math.max((now - this.#lastAt) / 1000, 0.001)
    const lagFresh = this.#lag && now - this.#lag.at <= LAG_FRESH_MS ? this.#lag.bytes : null
    this.#history.push({
      t: now,
      requestsPerSecond: Math.round(((this.#count - this.#lastCount) / secs) * 100) / 100,
      lagBytes: lagFresh,
    })
    if (this.#history.length > HISTORY_POINTS) this.#history.splice(0, this.#history.length - HISTORY_POINTS)
    this.#lastCount = this.#count
    this.#lastAt = now
  }

  history(): HistoryPoint[] {
    return [...this.#history]
  }

  routes(): RouteStats[] {
    const since = this.now() - WINDOW_MS
    const out: RouteStats[] = []
    for (const [route, r] of this.#routes) {
      const recent = r.samples.filter((s) => s.at >= since)
      const sorted = recent.map((s) => s.ms).sort((a, b) => a - b)
      const round = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10)
      out.push({
        route,
        perSecond: Math.round((recent.length / (WINDOW_MS / 1000)) * 100) / 100,
        total: r.total,
        p50Ms: round(percentile(sorted, 0.5)),
        p95Ms: round(percentile(sorted, 0.95)),
        errors: recent.filter((s) => s.error).length,
      })
    }
    return out.sort((a, b) => (a.route < b.route ? -1 : a.route > b.route ? 1 : 0))
  }
}
