import { ChangelogNotifier, type NotifierOptions, type PokeFn } from '../changelog/notifier.js'
import type { EngineContext } from '../core/context.js'
import type { LiveFrames } from '../core/types.js'
import { inRequest } from '../request/open.js'
import { FrameRenderer } from './frames.js'

/** The live side of one engine: the changelog notifier (pokes) and the frame renderer, both started on first use. */
export class LiveHub {
  #notifier: ChangelogNotifier | undefined
  #frames: FrameRenderer | undefined

  constructor(
    private readonly ctx: EngineContext,
    private readonly options: NotifierOptions & { frames: LiveFrames },
  ) {}

  /** Subscribes a registered client's buckets (404 / stale → 403 from the opener); returns the unsubscribe function. */
  async subscribe(
    userId: string,
    clientId: string,
    onChange: PokeFn,
    since?: number,
    onEnd?: () => void,
  ): Promise<() => void> {
    // The client row in one statement, no transaction: nothing is written.
    const opening = { access: 'read', schema: 'none', begin: null } as const
    const client = await inRequest(this.ctx, userId, { client_id: clientId }, opening, async (tx) => tx.client)
    this.#notifier ??= new ChangelogNotifier(this.ctx.pool, this.options, this.ctx.logger)
    // `ready` is sent once the head is known: a change committed after it arrives as an exact range (a frame), not as
    // a plain poke because a just-started notifier's first head read came back after it.
    await this.#notifier.ready()
    return this.#notifier.subscribe(client.bucketSubs, onChange, since, onEnd)
  }

  frame(userId: string, buckets: readonly string[], prev: number, to: number): Promise<Uint8Array | undefined> {
    if (this.options.frames === 'off') return Promise.resolve(undefined)
    this.#frames ??= new FrameRenderer(this.ctx, this.options.frames === 'shared')
    return this.#frames.body(userId, buckets, prev, to)
  }

  /** Ends every open stream (shutdown): clients reconnect elsewhere. */
  endAll(): void {
    this.#notifier?.endAll()
  }
}
