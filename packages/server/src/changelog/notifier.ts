import type pg from 'pg'
import type { Logger } from '../engine/types.js'
import { safeErrorFacts } from '../util/log.js'

interface Subscriber {
  buckets: ReadonlySet<string>
  notify: (seq: number) => void
  /** Ends the subscriber's stream (engine shutdown). */
  end?: () => void
  /** The subscriber's own checkpoint when it joined; poked once if the head is already past it. */
  since: number | undefined
}

/** Above this many new entries in one tick, every subscriber is poked instead of reading the bucket list. */
const MAX_SCAN = 50_000

/**
 * Tells live subscribers (the `/sync/events` stream) that their buckets received changelog entries. It polls the
 * changelog's head (`max(seq)`, an index lookup) every `intervalMs` while anyone listens — decoupled from the WAL
 * consumer, so it works in split deployments and on every server instance — and reads the distinct buckets of the
 * new entries only when the head moved. A poke is a hint: clients still pull to get the data.
 */
export class ChangelogNotifier {
  readonly #subs = new Set<Subscriber>()
  #timer: NodeJS.Timeout | undefined
  #last: number | undefined
  #ticking = false

  constructor(
    private readonly pool: pg.Pool,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Calls `notify(seq)` whenever one of `buckets` gets new entries; returns the unsubscribe function. With `since`
   * (the client's checkpoint), entries that landed before the subscription started also cause one poke, so nothing
   * falls between the client's last pull and the stream opening.
   */
  subscribe(buckets: readonly string[], notify: (seq: number) => void, since?: number, end?: () => void): () => void {
    const sub: Subscriber = { buckets: new Set(buckets), notify, since, end }
    this.#subs.add(sub)
    if (!this.#timer) {
      this.#timer = setInterval(() => void this.#tick(), this.intervalMs)
      this.#timer.unref()
    }
    return () => {
      this.#subs.delete(sub)
      if (this.#subs.size === 0) this.stop()
    }
  }

  /** Number of live subscribers (metrics). */
  get size(): number {
    return this.#subs.size
  }

  /** Ends every subscriber's stream (so a graceful shutdown is not held open by long-lived connections). */
  endAll(): void {
    for (const sub of [...this.#subs]) sub.end?.()
    this.#subs.clear()
    this.stop()
  }

  /** Stops polling (subscribers stay registered until they unsubscribe). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    this.#last = undefined
  }

  async #tick(): Promise<void> {
    if (this.#ticking) return
    this.#ticking = true
    try {
      const head = await this.pool.query<{ seq: string }>(
        'SELECT coalesce(max(seq), 0)::text AS seq FROM sync_changelog',
      )
      const seq = Number(head.rows[0]?.seq ?? 0)
      const last = this.#last
      this.#last = seq
      // Newcomers that are behind the head get one poke (a spurious poke only costs one empty pull).
      for (const sub of this.#subs) {
        if (sub.since === undefined) continue
        if (sub.since < (last ?? seq)) sub.notify(seq)
        sub.since = undefined
      }
      if (last === undefined || seq <= last) return
      let buckets: Set<string> | undefined
      if (seq - last <= MAX_SCAN) {
        const { rows } = await this.pool.query<{ bucket_id: string }>(
          'SELECT DISTINCT bucket_id FROM sync_changelog WHERE seq > $1 AND seq <= $2',
          [last, seq],
        )
        buckets = new Set(rows.map((r) => r.bucket_id))
      }
      for (const sub of this.#subs) {
        if (!buckets || [...sub.buckets].some((b) => buckets.has(b))) sub.notify(seq)
      }
    } catch (err) {
      // A failed tick only delays pokes; clients still sync on their timer.
      this.logger.warn({ err: safeErrorFacts(err, false) }, 'changelog poll failed')
    } finally {
      this.#ticking = false
    }
  }
}
