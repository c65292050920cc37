/**
 * When the engine's cycles run: on request (`syncNow`, the live stream, retry wake-ups), on the sync interval's timer
 * and after local writes (debounced). Cycles never overlap: a request during a running cycle makes that cycle run
 * once more (coalescing). Also the backoff sleeps between attempts, which `cancel()` cuts short.
 */
import type { ResolvedConfig } from '../config.js'
import { NotStartedError } from '../errors.js'

/** Thrown into a backoff sleep (and a cycle) when the engine stops. */
export class StoppedSignal extends Error {
  constructor() {
    super('sync stopped')
  }
}

type SchedulerConfig = Pick<ResolvedConfig, 'timers' | 'syncInterval' | 'pushDebounce'>

export class SyncScheduler {
  private running: Promise<void> | null = null
  private rerun: Promise<void> | null = null
  private timer: unknown = null
  private tickAt: number | null = null
  private debounce: unknown = null
  private debounceSince = 0
  /** When the last cycle started (timers.now()): a write after a quiet spell longer than pushDebounce goes at once. */
  private lastRunAt = Number.NEGATIVE_INFINITY
  private readonly sleeps = new Set<{ handle: unknown; reject: (e: unknown) => void }>()

  constructor(
    private readonly cfg: SchedulerConfig,
    /** Runs one cycle with its retries. */
    private readonly run: () => Promise<void>,
    private readonly isStarted: () => boolean,
  ) {}

  /** When the sync interval's timer fires next (null when it is not armed). */
  get nextTickAt(): number | null {
    return this.tickAt
  }

  /** The cycle (or other exclusive work, see `occupy`) in flight, if any. */
  get current(): Promise<void> | null {
    return this.running
  }

  /**
   * Runs `work` in the cycle slot when it is free (a live data frame's apply): a cycle requested meanwhile waits for
   * it. False when the slot is taken (nothing started).
   */
  occupy(work: () => Promise<void>): boolean {
    if (this.running) return false
    const p = work().finally(() => {
      if (this.running === p) this.running = null
    })
    this.running = p
    return true
  }

  /** Runs a cycle now, or joins the rerun of the running one. */
  request(): Promise<void> {
    if (!this.running) {
      this.lastRunAt = this.cfg.timers.now()
      const p = this.run().finally(() => {
        if (this.running === p) this.running = null
      })
      this.running = p
      return p
    }
    if (!this.rerun) {
      const r = this.running
        .catch(() => {})
        .then(() => {
          this.rerun = null
          if (!this.isStarted()) throw new NotStartedError()
          return this.request()
        })
      this.rerun = r
    }
    return this.rerun
  }

  /** Arms the sync interval's timer; each tick runs a cycle and re-arms when it ends. */
  scheduleTimer(): void {
    this.clearTimer()
    if (!this.isStarted() || this.cfg.syncInterval <= 0) return
    const ms = this.cfg.syncInterval * 1000
    this.tickAt = this.cfg.timers.now() + ms
    this.timer = this.cfg.timers.setTimeout(() => {
      this.timer = null
      this.tickAt = null
      this.request()
        .catch(() => {})
        .finally(() => this.scheduleTimer())
    }, ms)
  }

  /** A local write queued a change: push it (at once after a quiet spell, else debounced). */
  localWrite(): void {
    if (!this.isStarted()) return
    const now = this.cfg.timers.now()
    const wait = this.cfg.pushDebounce * 1000
    // The first write after a quiet spell (no cycle started within pushDebounce, nothing debounced) is pushed at
    // once: an idle client has nothing to coalesce it with. (A cycle in flight queues one follow-up cycle.)
    if (this.debounce === null && now - this.lastRunAt >= wait) {
      this.request().catch(() => {})
      return
    }
    // A burst: debounce with a ceiling. Each write pushes the deadline back by pushDebounce, but never past twice
    // that from the first unpushed write — a steady stream of writes must not starve the push.
    if (this.debounce === null) this.debounceSince = now
    else this.cfg.timers.clearTimeout(this.debounce)
    const due = Math.min(now + wait, this.debounceSince + 2 * wait)
    this.debounce = this.cfg.timers.setTimeout(
      () => {
        this.debounce = null
        this.request().catch(() => {})
      },
      Math.max(0, due - now),
    )
  }

  /** A backoff wait; rejects with StoppedSignal when the engine stops. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (!this.isStarted()) {
        reject(new StoppedSignal())
        return
      }
      const entry = {
        handle: null as unknown,
        reject,
      }
      entry.handle = this.cfg.timers.setTimeout(() => {
        this.sleeps.delete(entry)
        resolve()
      }, ms)
      this.sleeps.add(entry)
    })
  }

  /** Stops the timer, the debounce and every backoff sleep. */
  cancel(): void {
    this.clearTimer()
    if (this.debounce !== null) this.cfg.timers.clearTimeout(this.debounce)
    this.debounce = null
    for (const s of [...this.sleeps]) {
      this.cfg.timers.clearTimeout(s.handle)
      s.reject(new StoppedSignal())
    }
    this.sleeps.clear()
  }

  /** Resolves when the cycle in flight and its queued rerun (if any) have finished. */
  async settled(): Promise<void> {
    await this.running?.catch(() => {})
    await this.rerun?.catch(() => {})
  }

  private clearTimer(): void {
    if (this.timer !== null) this.cfg.timers.clearTimeout(this.timer)
    this.timer = null
    this.tickAt = null
  }
}
