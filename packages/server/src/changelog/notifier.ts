import type pg from 'pg'
import type { Logger } from '../util/log.js'
import { safeErrorFacts } from '../util/log.js'
import { ChangelogListener, type ChangelogPoke } from './listener.js'
import { bucketsBetween, headSeq } from './reader.js'
import { type PokeFn, type Subscriber, Subscribers } from './subscribers.js'

export type { PokeFn, PokeRange } from './subscribers.js'

/** Above this many new entries in one poll, every subscriber is poked instead of reading the bucket list. */
const MAX_SCAN = 50_000

export interface NotifierOptions {
  /** LISTEN for the capture leader's NOTIFY (default true). Off for poolers that cannot LISTEN (pgbouncer). */
  listen: boolean
  /** Head poll interval without LISTEN, or while its connection is down. */
  pollMs: number
  /** Head poll interval while LISTEN is up: only a safety net (writers that do not NOTIFY). */
  fallbackPollMs: number
}

/**
 * Tells live subscribers (the `/sync/events` stream) that their buckets received changelog entries. The capture
 * leader NOTIFYs, in the transaction that writes a changelog batch, the new head and the touched buckets; every
 * instance holds one LISTEN connection and pokes exactly the subscribers of those buckets, within a millisecond of
 * the commit. A head poll (`max(seq)`, an index lookup) backs it up: slowly while LISTEN is up, fast while it is
 * down, and once right after every (re)connect because notifications sent meanwhile are lost. A poke is a hint:
 * clients still pull to get the data.
 */
export class ChangelogNotifier {
  readonly #subs = new Subscribers()
  #timer: NodeJS.Timeout | undefined
  #timerMs = 0
  #listener: ChangelogListener | undefined
  /** Newest head this instance has acted on (poll or notification). */
  #last: number | undefined
  /** The head reads under way (`#tick`): a `ready` waits for them. */
  #ticking: Promise<void> | undefined
  /** A tick was requested while one ran: run again right after. */
  #again = false

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: NotifierOptions,
    private readonly logger: Logger,
  ) {}

  /** Resolves once the head is known (read now if idle: it pokes nobody; else the read under way), or it failed. */
  async ready(): Promise<void> {
    if (this.#last === undefined) await this.#tick()
  }

  /**
   * Calls `notify(seq)` whenever one of `buckets` gets new entries; returns the unsubscribe function. With `since` (the
   * client's checkpoint), entries that landed before the subscription also cause one poke: none falls in between.
   */
  subscribe(buckets: readonly string[], notify: PokeFn, since?: number, end?: () => void): () => void {
    const sub: Subscriber = { buckets: new Set(buckets), notify, since, end }
    this.#subs.add(sub)
    if (this.#subs.size === 1) this.#start()
    else if (since !== undefined && this.#last !== undefined) {
      // The head is known: settle the newcomer now (after the caller has sent its first event).
      setImmediate(() => this.#settleNewcomer(sub))
    }
    return () => {
      if (!this.#subs.delete(sub)) return
      if (this.#subs.size === 0) this.stop()
    }
  }

  /** Number of live subscribers (metrics). */
  get size(): number {
    return this.#subs.size
  }

  /** LISTEN is active (pokes arrive on commit rather than on the poll). */
  get listening(): boolean {
    return this.#listener?.up === true
  }

  /** Ends every subscriber's stream (so a graceful shutdown is not held open by long-lived connections). */
  endAll(): void {
    for (const sub of [...this.#subs]) sub.end?.()
    this.#subs.clear()
    this.stop()
  }

  /** Stops polling and listening (subscribers stay registered until they unsubscribe). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    this.#listener?.stop()
    this.#listener = undefined
    this.#last = undefined
  }

  #start(): void {
    this.#poll(this.options.pollMs)
    void this.#tick()
    if (!this.options.listen) return
    this.#listener = new ChangelogListener(
      this.pool.options,
      {
        onPoke: (p) => this.#onPoke(p),
        // Notifications sent while the connection was down are lost: re-read the head now, then poll slowly.
        onUp: () => {
          this.#poll(this.options.fallbackPollMs)
          void this.#tick()
        },
        onDown: () => this.#poll(this.options.pollMs),
      },
      this.logger,
    )
    this.#listener.start()
  }

  #poll(ms: number): void {
    if (this.#timer && this.#timerMs === ms) return
    if (this.#timer) clearInterval(this.#timer)
    this.#timerMs = ms
    this.#timer = setInterval(() => void this.#tick(), ms)
    this.#timer.unref()
  }

  #onPoke(p: ChangelogPoke): void {
    // Already covered by a head read. Otherwise the head read (re-run if under way) takes the range's buckets from the
    // changelog, not the payload: a notification lost meanwhile (LISTEN reconnect, a writer without NOTIFY) must widen
    // the range, never hide it — live data frames rely on every range being exact.
    if (this.#last !== undefined && p.seq <= this.#last) return
    void this.#tick()
  }

  #settleNewcomer(sub: Subscriber): void {
    if (sub.since === undefined || this.#last === undefined || !this.#subs.has(sub)) return
    if (sub.since < this.#last) sub.notify(this.#last)
    sub.since = undefined
  }

  #tick(): Promise<void> {
    if (this.#ticking) {
      this.#again = true
      return this.#ticking
    }
    this.#ticking = this.#ticks()
    return this.#ticking
  }

  async #ticks(): Promise<void> {
    try {
      do {
        this.#again = false
        await this.#readHead()
      } while (this.#again && this.#subs.size > 0)
    } catch (err) {
      // A failed poll only delays pokes; clients still sync on their timer.
      this.logger.warn({ err: safeErrorFacts(err, false) }, 'changelog poll failed')
    } finally {
      this.#ticking = undefined // at once as the loop ends: a tick asked for later starts anew
    }
  }

  async #readHead(): Promise<void> {
    const seq = await headSeq(this.pool)
    const last = this.#last
    if (last === undefined || seq > last) this.#last = seq
    // Newcomers that are behind the head get one poke (a spurious poke only costs one empty pull).
    for (const sub of this.#subs) {
      if (sub.since === undefined) continue
      if (sub.since < (last ?? seq)) sub.notify(Math.max(seq, last ?? 0))
      sub.since = undefined
    }
    if (last === undefined || seq <= last) return
    let buckets: Set<string> | undefined
    // A range whose buckets could not be read (a failed read, or compaction removed some of its entries before it)
    // is not skipped: everyone gets a plain poke for it (they pull).
    if (seq - last <= MAX_SCAN) buckets = await bucketsBetween(this.pool, last, seq).catch(() => undefined)
    this.#subs.poke(buckets, seq, last)
  }
}
