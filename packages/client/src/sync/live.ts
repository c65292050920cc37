/**
 * The live channel: listens to `GET /sync/events` (Server-Sent Events) and calls `onPoke` whenever the server says
 * the client's buckets changed, so data arrives within a poll interval instead of a sync interval. A hint only:
 * correctness never depends on it (the timer still syncs). Reconnects with capped exponential backoff; a server
 * without the endpoint (404 other than "client not registered") turns it off for the session.
 */
import { ServerError } from '../errors.js'
import type { Timers } from './retry.js'
import type { Transport } from './transport.js'

export class LiveChannel {
  private running = false
  private ctrl: AbortController | null = null
  private wake: (() => void) | null = null
  private wakeHandle: unknown = null

  constructor(
    private readonly transport: Transport,
    private readonly clientId: string,
    private readonly onPoke: () => void,
    /** The client's stored checkpoint: sent on (re)connect so changes made while disconnected still poke. */
    private readonly checkpoint: () => Promise<number>,
    private readonly timers: Timers,
  ) {}

  start(): void {
    if (this.running) return
    this.running = true
    void this.loop()
  }

  stop(): void {
    this.running = false
    this.ctrl?.abort()
    if (this.wakeHandle !== null) this.timers.clearTimeout(this.wakeHandle)
    this.wake?.()
  }

  private async loop(): Promise<void> {
    let failures = 0
    while (this.running) {
      this.ctrl = new AbortController()
      try {
        const res = await this.transport.openEvents(this.clientId, await this.checkpoint(), this.ctrl.signal)
        failures = 0
        await this.read(res)
      } catch (err) {
        if (!this.running) return
        if (err instanceof ServerError && err.status === 404 && !/not registered/.test(err.message)) return
        failures++
      }
      if (!this.running) return
      // 1, 2, 4 … 30 s between reconnects (a clean end of stream reconnects after 1 s).
      await this.sleep(Math.min(30_000, 1000 * 2 ** Math.max(0, failures - 1)))
    }
  }

  private async read(res: Response): Promise<void> {
    if (!res.body) return
    const reader = res.body.getReader()
    const decoder = new TextDecoder()
    let buf = ''
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done || !this.running) return
        buf += decoder.decode(value, { stream: true }).replaceAll('\r\n', '\n')
        let i = buf.indexOf('\n\n')
        while (i >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          if (/^event: ?poke$/m.test(block)) this.onPoke()
          i = buf.indexOf('\n\n')
        }
      }
    } finally {
      reader.cancel().catch(() => {})
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve
      this.wakeHandle = this.timers.setTimeout(() => {
        this.wakeHandle = null
        this.wake = null
        resolve()
      }, ms)
    })
  }
}
