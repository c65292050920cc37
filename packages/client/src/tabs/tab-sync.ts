/**
 * Sync when tabs share one database: only the owner tab runs the sync loop (its `SyncEngine`). `start()` in any
 * tab means "sync while I own the database"; the owner relays status and conflicts to the others, runs their
 * `syncNow()`, and syncs at once when the browser reports the network is back.
 */
import { parseJsonLossless, stringifyJsonLossless } from '@synchro/protocol'
import { AlreadyStartedError } from '../errors.js'
import type { LocalDatabase } from '../store/database.js'
import type { StatusEvent, SyncEngine } from '../sync/engine.js'
import { TabHost } from './host.js'
import { fromWire, OwnerLostError, toWire } from './rpc.js'
import type { SharedDatabase } from './shared-database.js'
import type { TabCoordination, TabMessage, WireStatus } from './types.js'

function toWireStatus(e: StatusEvent): WireStatus {
  return {
    status: e.status,
    retryAt: e.retryAt ? e.retryAt.getTime() : null,
    ...(e.error ? { error: toWire(e.error) } : {}),
    ...(e.progress ? { progress: e.progress } : {}),
  }
}

function fromWireStatus(w: WireStatus): StatusEvent {
  return {
    status: w.status as StatusEvent['status'],
    retryAt: w.retryAt === null ? null : new Date(w.retryAt),
    ...(w.error ? { error: fromWire(w.error) } : {}),
    ...(w.progress ? { progress: w.progress } : {}),
  }
}

export class TabSync {
  /** Sync should run while this tab owns the database (its own start(), or another tab's reaching it as owner). */
  private wantSync = false
  /** This client called start(): ALREADY_STARTED is about that, not about another tab's start(). */
  private startedHere = false
  private host: TabHost | null = null
  private hostReady!: () => void
  /** Resolves once this tab owns the database and serves the others. */
  private readonly ready = new Promise<void>((r) => {
    this.hostReady = r
  })
  private remoteStatus: StatusEvent = { status: 'stopped', retryAt: null }
  private readonly stops: (() => void)[] = []
  private closed = false

  constructor(
    private readonly coord: TabCoordination,
    local: LocalDatabase,
    private readonly engine: SyncEngine,
    private readonly db: SharedDatabase,
  ) {
    this.stops.push(coord.onMessage((m) => this.receive(m)))
    coord.onOwner(() => {
      if (this.closed) return
      const host = new TabHost(coord, local, {
        syncNow: () => engine.syncNow(),
        // Another tab asked for sync: it runs here, in the owner, until the owner closes.
        start: () => {
          this.wantSync = true
          return this.startEngine()
        },
      })
      host.start().then(
        () => {
          if (this.closed) return host.stop()
          this.host = host
          this.relay()
          this.hostReady()
          this.startEngine().catch(() => {})
        },
        (err: unknown) => console.error('[synchro] cannot serve the other tabs', err),
      )
    })
  }

  private receive(m: TabMessage): void {
    if (m.t === 'hello' && this.host)
      this.coord.post({ t: 'status', from: this.coord.selfId, status: toWireStatus(this.engine.status) })
    if (this.host) return
    if (m.t === 'status') {
      this.remoteStatus = fromWireStatus(m.status)
      for (const l of [...this.engine.statusListeners]) l(this.remoteStatus)
    } else if (m.t === 'conflict') {
      const event = parseJsonLossless(m.event) as never
      for (const l of [...this.engine.conflictListeners]) l(event)
    }
  }

  /** The owner tells everybody about its status and conflicts. */
  private relay(): void {
    const self = this.coord.selfId
    const onStatus = (e: StatusEvent) => this.coord.post({ t: 'status', from: self, status: toWireStatus(e) })
    // As exact JSON text: a conflict's data may hold numbers past 2^53 (JsonDecimal), which plain JSON refuses.
    const onConflict = (e: object) => this.coord.post({ t: 'conflict', from: self, event: stringifyJsonLossless(e) })
    this.engine.statusListeners.add(onStatus)
    this.engine.conflictListeners.add(onConflict)
    this.stops.push(
      () => this.engine.statusListeners.delete(onStatus),
      () => this.engine.conflictListeners.delete(onConflict),
    )
    const offOnline = this.coord.onOnline?.(() => {
      if (this.engine.isStarted) this.engine.syncNow().catch(() => {})
    })
    if (offOnline) this.stops.push(offOnline)
  }

  private engineStart: Promise<void> | null = null

  /** Starts the engine once (resolves when the local database is ready, like `SynchroClient.start`). */
  private startEngine(): Promise<void> {
    if (!this.wantSync || !this.host || this.closed) return Promise.resolve()
    if (!this.engine.isStarted) this.engineStart = this.engine.start()
    return this.engineStart ?? Promise.resolve()
  }

  /**
   * In the owner tab: starts the engine. In another tab: asks the owner to sync (if it does not already) and
   * resolves once the owner has started. Either way sync continues in whichever tab owns the database next.
   */
  async start(): Promise<void> {
    if (this.startedHere) throw new AlreadyStartedError()
    this.startedHere = true
    this.wantSync = true
    for (;;) {
      const owner = await this.db.link.owner()
      if (owner === this.coord.selfId) {
        await this.ready
        return this.startEngine()
      }
      try {
        await this.db.link.request(owner, { kind: 'start' })
        return
      } catch (err) {
        if (!(err instanceof OwnerLostError)) throw err
      }
    }
  }

  async stop(): Promise<void> {
    this.wantSync = false
    this.startedHere = false
    await this.engine.stop()
  }

  async syncNow(): Promise<void> {
    for (;;) {
      const owner = await this.db.link.owner()
      if (owner === this.coord.selfId) {
        await this.ready
        return this.engine.syncNow()
      }
      try {
        await this.db.link.request(owner, { kind: 'syncNow' })
        return
      } catch (err) {
        if (!(err instanceof OwnerLostError)) throw err
      }
    }
  }

  get status(): StatusEvent {
    return this.host ? this.engine.status : this.remoteStatus
  }

  get isOwner(): boolean {
    return this.host !== null
  }

  async close(): Promise<void> {
    this.closed = true
    await this.stop()
    for (const s of this.stops.splice(0)) s()
    this.host?.stop()
  }
}
