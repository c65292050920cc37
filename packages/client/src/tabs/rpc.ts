/** Requests from one tab to the owner tab over the shared channel, and the owner tracking they rely on. */
import { DatabaseError, SynchroError } from '../errors.js'
import type { RequestBody, TabCoordination, TabMessage, WireError } from './types.js'

/** The owner tab went away before answering: the request may or may not have been applied. */
export class OwnerLostError extends Error {
  constructor() {
    super('the tab that owns the database went away')
    this.name = 'OwnerLostError'
  }
}

export function toWire(err: unknown): WireError {
  if (err instanceof SynchroError) return { name: err.name, message: err.message, code: err.code }
  if (err instanceof Error) return { name: err.name, message: err.message }
  return { name: 'Error', message: String(err) }
}

/** A `SynchroError` again on this side (the class is lost in transit; the code is kept). */
export function fromWire(e: WireError): SynchroError {
  if (e.code && e.code !== 'DATABASE_ERROR') return new SynchroError(e.code as SynchroError['code'], e.message)
  return new DatabaseError(e.message)
}

type Pending = { to: string; resolve: (v: unknown) => void; reject: (e: unknown) => void }

export class OwnerLink {
  private ownerId: string | null = null
  private waiters: ((id: string) => void)[] = []
  private nextRid = 1
  private readonly pending = new Map<number, Pending>()
  private readonly watched = new Set<string>()
  /** Called when a (new) owner is known; the follower re-sends its observed tables. */
  onNewOwner: (id: string) => void = () => {}

  constructor(private readonly coord: TabCoordination) {
    coord.onMessage((m) => this.receive(m))
    coord.onOwner(() => this.setOwner(coord.selfId))
    coord.post({ t: 'hello', from: coord.selfId })
  }

  private receive(m: TabMessage): void {
    if (m.t === 'owner') this.setOwner(m.from)
    else if (m.t === 'res' && m.to === this.coord.selfId) {
      const p = this.pending.get(m.rid)
      if (!p) return
      this.pending.delete(m.rid)
      if (m.ok) p.resolve(m.value)
      else p.reject(fromWire(m.error))
    }
  }

  private setOwner(id: string): void {
    if (this.ownerId === id) return
    if (this.ownerId !== null) this.lost(this.ownerId)
    this.ownerId = id
    if (id !== this.coord.selfId && !this.watched.has(id)) {
      this.watched.add(id)
      this.coord.onGone(id, () => {
        this.watched.delete(id)
        this.lost(id)
      })
    }
    for (const w of this.waiters.splice(0)) w(id)
    this.onNewOwner(id)
  }

  /** Fails every request addressed to `id` (it is gone). */
  private lost(id: string): void {
    if (this.ownerId === id) this.ownerId = null
    for (const [rid, p] of this.pending) {
      if (p.to !== id) continue
      this.pending.delete(rid)
      p.reject(new OwnerLostError())
    }
  }

  /** The current owner's id (this tab's own id when it owns the database); waits while there is none. */
  owner(): Promise<string> {
    if (this.ownerId !== null) return Promise.resolve(this.ownerId)
    return new Promise((r) => this.waiters.push(r))
  }

  get isSelfOwner(): boolean {
    return this.ownerId === this.coord.selfId
  }

  request(to: string, body: RequestBody): Promise<unknown> {
    if (to !== this.ownerId) return Promise.reject(new OwnerLostError())
    const rid = this.nextRid++
    return new Promise((resolve, reject) => {
      this.pending.set(rid, { to, resolve, reject })
      this.coord.post({ t: 'req', from: this.coord.selfId, to, rid, body })
    })
  }
}
