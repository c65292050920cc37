/**
 * The sync state machine (see packages/client/SPEC.md): start → connect (schema, migrate, register, bootstrap) →
 * cycles of push-then-pull, driven by a timer, by debounced local writes and by `syncNow()`. Cycles never overlap:
 * a request during a running cycle makes that cycle run once more (coalescing, scheduler.ts). The steps of a cycle
 * are in cycle/, the status events in status.ts.
 */
import type { ResolvedConfig } from '../config.js'
import { AlreadyStartedError, NotStartedError, SynchroError } from '../errors.js'
import type { ClientSchema } from '../schema/synced-table.js'
import { PENDING_TABLE } from '../schema/triggers.js'
import { type LocalDatabase, setMeta } from '../store/database.js'
import { type CycleContext, runCycle } from './cycle/index.js'
import { LivePosition } from './frames.js'
import { type LiveChannel, openLiveChannel } from './live.js'
import type { PushOutcome } from './push.js'
import { withRetry } from './retry.js'
import { StoppedSignal, SyncScheduler } from './scheduler.js'
import { type ConflictEvent, type SnapshotApprover, type StatusEvent, StatusFeed } from './status.js'
import type { Transport } from './transport.js'
import { WakeTimer } from './wake.js'

export { APPLY_GROUP_ROWS } from './cycle/index.js'
export type { ConflictEvent, SnapshotApprover, StatusEvent, SyncProgress, SyncStatus } from './status.js'

export class SyncEngine {
  private started = false
  private readonly feed = new StatusFeed()
  private readonly scheduler: SyncScheduler
  private readonly ctx: CycleContext & { readonly position: LivePosition }
  private unlisten: (() => void) | null = null
  private live: LiveChannel | null = null
  /** Wakes the engine when the earliest record waiting for a retry is due (see push.ts). */
  private readonly retryWake: WakeTimer
  /** Cycles run so far (tests and diagnostics). */
  cycles = 0

  readonly statusListeners = this.feed.statusListeners
  readonly conflictListeners = this.feed.conflictListeners
  readonly snapshotApprovers = new Set<SnapshotApprover>()
  /** Called after each push batch was applied locally (rejections, confirmations). */
  readonly pushObservers = new Set<(o: PushOutcome) => void>()

  constructor(
    private readonly cfg: ResolvedConfig,
    private readonly db: LocalDatabase,
    private readonly transport: Transport,
  ) {
    this.scheduler = new SyncScheduler(
      cfg,
      () => this.runWithRetry(),
      () => this.started,
    )
    this.retryWake = new WakeTimer(cfg.timers, () => this.scheduler.request().catch(() => {}))
    this.ctx = {
      cfg,
      db,
      transport,
      schema: null,
      connected: false,
      setStatus: (e) => this.setStatus(e),
      emitConflict: (c: ConflictEvent) => this.feed.emitConflict(c),
      pushObservers: this.pushObservers,
      snapshotApprovers: this.snapshotApprovers,
      position: new LivePosition(),
    }
  }

  get status(): StatusEvent {
    return this.feed.current
  }

  get isStarted(): boolean {
    return this.started
  }

  get loadedSchema(): ClientSchema | null {
    return this.ctx.schema
  }

  /**
   * Starts syncing. Resolves as soon as the local database is ready; the first cycle runs in the background and
   * its outcome shows in the status (offline is normal: `error`, retried by the timer).
   */
  async start(): Promise<void> {
    if (this.started) throw new AlreadyStartedError()
    this.started = true
    this.ctx.connected = false
    this.transport.setActive(true)
    try {
      await this.db.init()
      // Crash recovery: a process that died mid-apply may have left the lock set.
      await this.db.run((ex) => setMeta(ex, 'sync_lock', '0'), 'sync')
    } catch (err) {
      this.started = false
      throw err
    }
    this.unlisten = this.db.addListener((tables, origin) => {
      if (origin === 'local' && tables.includes(PENDING_TABLE)) this.scheduler.localWrite()
    })
    this.setStatus({ status: 'connecting', retryAt: null })
    // The live stream opens after the first cycle, which registers the client (a stream opened before that is
    // answered 404 "client not registered" and only reconnects a second later).
    this.scheduler
      .request()
      .catch(() => {})
      .finally(() => this.startLive())
    this.scheduler.scheduleTimer()
  }

  private startLive(): void {
    if (!this.started || !this.cfg.live || this.live) return
    this.live = openLiveChannel(this.ctx, this.scheduler, () => this.started)
  }

  /** Stops timers and backoff waits; resolves when the cycle in flight (if any) has finished. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.ctx.connected = false
    this.unlisten?.()
    this.unlisten = null
    this.live?.stop()
    this.live = null
    this.scheduler.cancel()
    this.retryWake.clear()
    this.transport.setActive(false)
    this.feed.emit({ status: 'stopped', retryAt: null })
    await this.scheduler.settled()
  }

  /** Runs a cycle now (or joins the rerun of the running one); rejects with the cycle's final failure. */
  syncNow(): Promise<void> {
    if (!this.started) return Promise.reject(new NotStartedError())
    return this.scheduler.request()
  }

  private async runWithRetry(): Promise<void> {
    try {
      await withRetry(() => this.cycleOnce(), {
        maxRetryAttempts: this.cfg.maxRetryAttempts,
        random: this.cfg.random,
        sleep: (ms) => this.scheduler.sleep(ms),
        onRetry: (err, delay) =>
          this.setStatus({ status: 'error', retryAt: new Date(this.cfg.timers.now() + delay), error: toError(err) }),
      })
      this.setStatus({ status: 'idle', retryAt: null })
    } catch (err) {
      if (err instanceof StoppedSignal) return
      const e = toError(err)
      // No sleep after the last attempt (Decision 25): the next timer tick is the next try.
      // A timer-driven cycle re-arms the timer when it ends: its next tick is one interval from now.
      const tick =
        this.scheduler.nextTickAt ??
        (this.cfg.syncInterval > 0 ? this.cfg.timers.now() + this.cfg.syncInterval * 1000 : null)
      const retryAt = e.retryable && tick !== null ? new Date(tick) : null
      this.setStatus({ status: 'error', retryAt, error: e })
      throw e
    }
  }

  private async cycleOnce(): Promise<void> {
    if (!this.started) throw new StoppedSignal()
    this.cycles++
    this.setStatus({ status: 'syncing', retryAt: null })
    const due = await runCycle(this.ctx)
    if (this.started) this.retryWake.arm(due)
  }

  private setStatus(e: StatusEvent): void {
    if (!this.started) return
    this.feed.emit(e)
  }
}

function toError(err: unknown): SynchroError {
  if (err instanceof SynchroError) return err
  return new SynchroError('DATABASE_ERROR', err instanceof Error ? err.message : String(err), { cause: err })
}
