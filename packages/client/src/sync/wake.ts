import type { Timers } from './retry.js'

/** One re-armable timer: wakes the engine when the earliest record waiting for a push retry is due. */
export class WakeTimer {
  private handle: unknown = null

  constructor(
    private readonly timers: Timers,
    private readonly fire: () => void,
  ) {}

  /** Replaces the pending wake-up with one at `at` (ms since the epoch); none when null. */
  arm(at: number | null): void {
    this.clear()
    if (at === null) return
    this.handle = this.timers.setTimeout(
      () => {
        this.handle = null
        this.fire()
      },
      Math.max(0, at - this.timers.now()),
    )
  }

  clear(): void {
    if (this.handle !== null) this.timers.clearTimeout(this.handle)
    this.handle = null
  }
}
