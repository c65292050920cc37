/**
 * The demo's "offline" switch. Every request of the sync client goes through `fetch` here; switched off, new
 * requests fail at once and the ones in flight — the live event stream included — are aborted, so the page really
 * has no network path to the server (as a phone in airplane mode), not just a flag the UI shows.
 */
import type { FetchLike } from '@synchro/client'

export class NetworkSwitch {
  #online = true
  readonly #inFlight = new Set<AbortController>()
  readonly #listeners = new Set<() => void>()

  get online(): boolean {
    return this.#online
  }

  set(online: boolean): void {
    if (online === this.#online) return
    this.#online = online
    if (!online) for (const ac of this.#inFlight) ac.abort(new TypeError('offline (demo switch)'))
    for (const l of this.#listeners) l()
  }

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  readonly fetch: FetchLike = async (input, init) => {
    if (!this.#online) throw new TypeError('offline (demo switch)')
    const ac = new AbortController()
    const outer = init.signal
    if (outer) {
      if (outer.aborted) ac.abort(outer.reason)
      else outer.addEventListener('abort', () => ac.abort(outer.reason), { once: true })
    }
    this.#inFlight.add(ac)
    ac.signal.addEventListener('abort', () => this.#inFlight.delete(ac), { once: true })
    try {
      const res = await fetch(input, { ...init, signal: ac.signal })
      // A streamed body (the live event stream) stays cuttable until it ends; others are read right away.
      if (!res.headers.get('content-type')?.startsWith('text/event-stream')) this.#inFlight.delete(ac)
      return res
    } catch (err) {
      this.#inFlight.delete(ac)
      throw err
    }
  }
}
