/**
 * The live channel: listens to `GET /sync/events` (Server-Sent Events) and calls `onPoke` whenever the server says
 * the client's buckets changed, so data arrives within a poll interval instead of a sync interval. A hint only:
 * correctness never depends on it (the timer still syncs). Reconnects with capped exponential backoff; a server
 * without the endpoint (404 other than "client not registered") turns it off for the session.
 */
import { parseJsonLossless } from '@synchro/protocol'
import { ServerError } from '../errors.js'
import { getMeta } from '../store/database.js'
import type { CycleContext } from './cycle/context.js'
import { type LiveFrame, type LivePosition, onLiveFrame, parseFrame } from './frames.js'
import type { Timers } from './retry.js'
import type { SyncScheduler } from './scheduler.js'
import type { Transport } from './transport.js'

export class LiveChannel {
  private running = false
  private ctrl: AbortController | null = null
  private wake: (() => void) | null = null
  private wakeHandle: unknown = null

  constructor(
    private readonly transport: Transport,
    private readonly clientId: string,
    /** A poke: pull now. `seq` is the changelog head it announced (undefined if unreadable). */
    private readonly onPoke: (seq?: number) => void,
    /** The client's stored checkpoint: sent on (re)connect so changes made while disconnected still poke. */
    private readonly checkpoint: () => Promise<number>,
    private readonly timers: Timers,
    /** Data frames (asked for when given): a change range's rows on the stream itself. */
    private readonly onFrame?: (frame: LiveFrame) => void,
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
        const res = await this.transport.openEvents(
          this.clientId,
          await this.checkpoint(),
          this.ctrl.signal,
          this.onFrame !== undefined,
        )
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
          this.dispatch(block)
          i = buf.indexOf('\n\n')
        }
      }
    } finally {
      reader.cancel().catch(() => {})
    }
  }

  /** One event block: a poke, or a frame (one that cannot be read is treated as a poke: pull). */
  private dispatch(block: string): void {
    const event = /^event: ?(\w+)$/m.exec(block)?.[1]
    if (event !== 'poke' && event !== 'page') return
    const line = /^data: ?(.*)$/m.exec(block)?.[1]
    let data: unknown
    try {
      data = line === undefined ? undefined : parseJsonLossless(line)
    } catch {
      data = undefined
    }
    const frame = event === 'page' ? parseFrame(data) : undefined
    if (frame && this.onFrame) {
      this.onFrame(frame)
      return
    }
    const seq = (data as { seq?: unknown } | undefined)?.seq
    this.onPoke(typeof seq === 'number' && Number.isSafeInteger(seq) ? seq : undefined)
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

/**
 * The engine's live channel: a poke records the head it announced and asks for a cycle; the stream opens at the
 * stored checkpoint (where the server starts its frames); a frame goes through `onLiveFrame`.
 */
export function openLiveChannel(
  ctx: CycleContext & { readonly position: LivePosition },
  scheduler: SyncScheduler,
  started: () => boolean,
): LiveChannel {
  const channel = new LiveChannel(
    ctx.transport,
    ctx.cfg.clientID,
    (seq) => {
      if (seq !== undefined) ctx.position.hear(seq)
      scheduler.request().catch(() => {})
    },
    async () => {
      const epoch = ctx.position.epoch
      const checkpoint = Number((await ctx.db.run((ex) => getMeta(ex, 'checkpoint'))) ?? '0') || 0
      ctx.position.opened(checkpoint, epoch)
      return checkpoint
    },
    ctx.cfg.timers,
    (frame) => onLiveFrame(frame, ctx, scheduler, started),
  )
  channel.start()
  return channel
}
