/**
 * What a poke knows about the change range: every changelog entry in (`prev`, head] of the subscriber's buckets is in
 * one of `buckets` (the subscriber's buckets that got entries), and every earlier range since the subscriber joined
 * was reported too — so a subscriber told about (prev, head] has heard of every range touching it.
 */
export interface PokeRange {
  prev: number
  buckets: readonly string[]
}

/** Called with the new head and, when the range's buckets were read exactly, the range (live data frames). */
export type PokeFn = (seq: number, range?: PokeRange) => void

export interface Subscriber {
  buckets: ReadonlySet<string>
  notify: PokeFn
  /** Ends the subscriber's stream (engine shutdown). */
  end?: () => void
  /** The subscriber's own checkpoint when it joined; poked once if the head is already past it. */
  since: number | undefined
}

/** The live subscribers of one instance, indexed by bucket so a batch pokes its buckets' streams without a scan. */
export class Subscribers {
  readonly #all = new Set<Subscriber>()
  readonly #byBucket = new Map<string, Set<Subscriber>>()

  get size(): number {
    return this.#all.size
  }

  has(sub: Subscriber): boolean {
    return this.#all.has(sub)
  }

  [Symbol.iterator](): IterableIterator<Subscriber> {
    return this.#all.values()
  }

  add(sub: Subscriber): void {
    this.#all.add(sub)
    for (const b of sub.buckets) {
      const set = this.#byBucket.get(b)
      if (set) set.add(sub)
      else this.#byBucket.set(b, new Set([sub]))
    }
  }

  /** False when it was not (or no longer) subscribed. */
  delete(sub: Subscriber): boolean {
    if (!this.#all.delete(sub)) return false
    for (const b of sub.buckets) {
      const set = this.#byBucket.get(b)
      set?.delete(sub)
      if (set?.size === 0) this.#byBucket.delete(b)
    }
    return true
  }

  clear(): void {
    this.#all.clear()
    this.#byBucket.clear()
  }

  /**
   * Pokes the subscribers of `buckets` (every subscriber when undefined), each once; with exact buckets each gets
   * the range (`prev`, seq] and which of its buckets it touched.
   */
  poke(buckets: ReadonlySet<string> | undefined, seq: number, prev: number): void {
    if (!buckets) {
      for (const sub of this.#all) sub.notify(seq)
      return
    }
    const hit = new Map<Subscriber, string[]>()
    for (const b of buckets) {
      for (const sub of this.#byBucket.get(b) ?? []) {
        const list = hit.get(sub)
        if (list) list.push(b)
        else hit.set(sub, [b])
      }
    }
    for (const [sub, touched] of hit) {
      if (sub.since === undefined) sub.notify(seq, { prev, buckets: touched })
      else {
        // Joined while this range was being read: nothing is known of its buckets in (since, prev], so no range (a
        // frame starting at `since` would stand for entries it does not hold) — a plain poke, and it is settled.
        sub.since = undefined
        sub.notify(seq)
      }
    }
  }
}
