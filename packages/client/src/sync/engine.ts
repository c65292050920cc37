/**
 * The sync state machine (see packages/client/SPEC.md): start → connect (schema, migrate, register, bootstrap) →
 * cycles of push-then-pull, driven by a timer, by debounced local writes and by `syncNow()`. Cycles never overlap:
 * a request during a running cycle makes that cycle run once more (coalescing).
 */
import type { PullResponse, PushResponse, SnapshotCursor, SnapshotResponse } from '@synchro/protocol'
import type { ResolvedConfig } from '../config.js'
import {
  AlreadyStartedError,
  InvalidResponseError,
  NotStartedError,
  SchemaMismatchError,
  ServerError,
  SnapshotRequiredError,
  SynchroError,
} from '../errors.js'
import { clearForRebuild, migrateToSchema } from '../schema/migrate.js'
import { type ClientSchema, toClientSchema } from '../schema/synced-table.js'
import { PENDING_TABLE } from '../schema/triggers.js'
import { getMeta, type LocalDatabase, setMeta, withSyncLock } from '../store/database.js'
import { applyPullGroup, applySnapshotPage, mergeBuckets, parseBuckets } from './apply.js'
import { LiveChannel } from './live.js'
import {
  applyPushResults,
  type ConflictInfo,
  markAttempted,
  nextRetryAt,
  type PushOutcome,
  queueKey,
  readPushBatch,
} from './push.js'
import { withRetry } from './retry.js'
import type { Transport } from './transport.js'
import { WakeTimer } from './wake.js'

export type SyncStatus = 'idle' | 'connecting' | 'syncing' | 'error' | 'stopped'

export interface SyncProgress {
  /** `snapshot` while bootstrapping/rebuilding, `pull` while catching up. */
  phase: 'snapshot' | 'pull'
  /** Rows received so far in this phase. */
  rows: number
  /** Pages received so far in this phase. */
  pages: number
  /** Snapshot only: synced tables fully received, of `tablesTotal` (a progress bar's coarse measure). */
  tablesDone?: number
  tablesTotal?: number
}

export interface StatusEvent {
  status: SyncStatus
  /** When the next automatic attempt happens after an error; null otherwise. */
  retryAt: Date | null
  /** The failure behind an `error` status. */
  error?: SynchroError
  /** Snapshot/pull progress while `syncing`. */
  progress?: SyncProgress
}

export type ConflictEvent = ConflictInfo

export type SnapshotApprover = () => Promise<boolean> | boolean

class StoppedSignal extends Error {
  constructor() {
    super('sync stopped')
  }
}

/**
 * Rows applied per write transaction when pages arrive back to back (has_more). Bigger groups mean fewer commits
 * (each rewrites every B-tree page it touched into the WAL); smaller ones mean fresher UI and less re-download when
 * the network fails mid-catch-up.
 */
export const APPLY_GROUP_ROWS = 10_000

/** Schema refreshes (409 → refetch, migrate, re-register) allowed within one cycle. */
const MAX_SCHEMA_REFRESHES = 3

export class SyncEngine {
  private started = false
  private connected = false
  private schema: ClientSchema | null = null
  private current: StatusEvent = { status: 'stopped', retryAt: null }
  private running: Promise<void> | null = null
  private rerun: Promise<void> | null = null
  private timer: unknown = null
  private nextTickAt: number | null = null
  private debounce: unknown = null
  private debounceSince = 0
  /** When the last cycle started (timers.now()): a write after a quiet spell longer than pushDebounce goes at once. */
  private lastRunAt = Number.NEGATIVE_INFINITY
  private readonly sleeps = new Set<{ handle: unknown; reject: (e: unknown) => void }>()
  private unlisten: (() => void) | null = null
  private live: LiveChannel | null = null
  /** Wakes the engine when the earliest record waiting for a retry is due (see push.ts). */
  private readonly retryWake: WakeTimer
  /** Cycles run so far (tests and diagnostics). */
  cycles = 0

  readonly statusListeners = new Set<(e: StatusEvent) => void>()
  readonly conflictListeners = new Set<(e: ConflictEvent) => void>()
  readonly snapshotApprovers = new Set<SnapshotApprover>()
  /** Called after each push batch was applied locally (rejections, confirmations). */
  readonly pushObservers = new Set<(o: PushOutcome) => void>()

  constructor(
    private readonly cfg: ResolvedConfig,
    private readonly db: LocalDatabase,
    private readonly transport: Transport,
  ) {
    this.retryWake = new WakeTimer(cfg.timers, () => this.requestSync().catch(() => {}))
  }

  get status(): StatusEvent {
    return this.current
  }

  get isStarted(): boolean {
    return this.started
  }

  get loadedSchema(): ClientSchema | null {
    return this.schema
  }

  /**
   * Starts syncing. Resolves as soon as the local database is ready; the first cycle runs in the background and
   * its outcome shows in the status (offline is normal: `error`, retried by the timer).
   */
  async start(): Promise<void> {
    if (this.started) throw new AlreadyStartedError()
    this.started = true
    this.connected = false
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
      if (origin === 'local' && tables.includes(PENDING_TABLE)) this.scheduleDebouncedPush()
    })
    this.setStatus({ status: 'connecting', retryAt: null })
    // The live stream opens after the first cycle, which registers the client (a stream opened before that is
    // answered 404 "client not registered" and only reconnects a second later).
    this.requestSync()
      .catch(() => {})
      .finally(() => this.startLive())
    this.scheduleTimer()
  }

  private startLive(): void {
    if (!this.started || !this.cfg.live || this.live) return
    this.live = new LiveChannel(
      this.transport,
      this.cfg.clientID,
      () => this.requestSync().catch(() => {}),
      async () => Number((await this.db.run((ex) => getMeta(ex, 'checkpoint'))) ?? '0') || 0,
      this.cfg.timers,
    )
    this.live.start()
  }

  /** Stops timers and backoff waits; resolves when the cycle in flight (if any) has finished. */
  async stop(): Promise<void> {
    if (!this.started) return
    this.started = false
    this.connected = false
    this.unlisten?.()
    this.unlisten = null
    this.live?.stop()
    this.live = null
    this.clearTimer()
    if (this.debounce !== null) this.cfg.timers.clearTimeout(this.debounce)
    this.debounce = null
    this.retryWake.clear()
    for (const s of [...this.sleeps]) {
      this.cfg.timers.clearTimeout(s.handle)
      s.reject(new StoppedSignal())
    }
    this.sleeps.clear()
    this.transport.setActive(false)
    this.emit({ status: 'stopped', retryAt: null })
    await this.running?.catch(() => {})
    await this.rerun?.catch(() => {})
  }

  /** Runs a cycle now (or joins the rerun of the running one); rejects with the cycle's final failure. */
  syncNow(): Promise<void> {
    if (!this.started) return Promise.reject(new NotStartedError())
    return this.requestSync()
  }

  private requestSync(): Promise<void> {
    if (!this.running) {
      this.lastRunAt = this.cfg.timers.now()
      const p = this.runWithRetry().finally(() => {
        if (this.running === p) this.running = null
      })
      this.running = p
      return p
    }
    if (!this.rerun) {
      const r = this.running
        .catch(() => {})
        .then(() => {
          this.rerun = null
          if (!this.started) throw new NotStartedError()
          return this.requestSync()
        })
      this.rerun = r
    }
    return this.rerun
  }

  private async runWithRetry(): Promise<void> {
    try {
      await withRetry(() => this.cycleOnce(), {
        maxRetryAttempts: this.cfg.maxRetryAttempts,
        random: this.cfg.random,
        sleep: (ms) => this.sleep(ms),
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
        this.nextTickAt ?? (this.cfg.syncInterval > 0 ? this.cfg.timers.now() + this.cfg.syncInterval * 1000 : null)
      const retryAt = e.retryable && tick !== null ? new Date(tick) : null
      this.setStatus({ status: 'error', retryAt, error: e })
      throw e
    }
  }

  private async cycleOnce(): Promise<void> {
    if (!this.started) throw new StoppedSignal()
    this.cycles++
    this.setStatus({ status: 'syncing', retryAt: null })
    let refreshes = 0
    for (;;) {
      try {
        if (!this.connected) await this.connect()
        const complete = await this.db.run((ex) => getMeta(ex, 'snapshot_complete'))
        if (complete !== '1') await this.snapshotRebuild(false, 'initial_sync_required')
        await this.pushAll()
        // A rejection whose answer did not carry the server's copy asks for the data again (rejections.ts).
        const refetch = (await this.db.run((ex) => getMeta(ex, 'snapshot_complete'))) !== '1'
        // Records waiting for a retry do not hold anything back: rows with queued changes are never overwritten by
        // pulled data, and a wake-up pushes them when due.
        if (refetch) await this.snapshotRebuild(false, 'refetch')
        else await this.pullAll()
        const due = await this.db.run((ex) => nextRetryAt(ex))
        if (this.started) this.retryWake.arm(due)
        return
      } catch (err) {
        const stale =
          err instanceof SchemaMismatchError ||
          (err instanceof ServerError && err.status === 404 && /client not registered/.test(err.message))
        if (stale && refreshes < MAX_SCHEMA_REFRESHES) {
          // 409: fetch the new schema, migrate additively, register with the new pair, retry (no data is dropped).
          // 404 "client not registered": the server lost our registration; registering again is all it takes.
          refreshes++
          this.connected = false
          continue
        }
        throw err
      }
    }
  }

  /** Schema → additive migration → register; the session's first step and the answer to a 409. */
  private async connect(): Promise<void> {
    const res = await this.transport.getSchema()
    const schema = toClientSchema(res)
    await this.db.transaction(async (tx) => {
      const wasComplete = (await getMeta(tx, 'snapshot_complete')) === '1'
      const result = await migrateToSchema(tx, schema)
      // A table new to this database has server rows that no changelog entry will ever bring: re-snapshot
      // (which keeps queued changes, Decision 21).
      if (wasComplete && result.createdTables.length > 0) await setMeta(tx, 'snapshot_complete', '0')
    }, 'sync')
    this.db.schemaChanged()
    this.schema = schema
    const reg = await this.transport.register({
      client_id: this.cfg.clientID,
      client_name: null,
      platform: this.cfg.platform,
      app_version: this.cfg.appVersion,
      schema_version: schema.version,
      schema_hash: schema.hash,
    })
    await this.db.run((ex) => setMeta(ex, 'client_server_id', reg.id), 'sync')
    this.connected = true
  }

  private pair(): { schema_version: number; schema_hash: string } {
    const s = this.requireSchema()
    return { schema_version: s.version, schema_hash: s.hash }
  }

  private requireSchema(): ClientSchema {
    if (!this.schema) throw new InvalidResponseError('schema not loaded')
    return this.schema
  }

  /**
   * Pushes the whole queue in batches (§4.3 step 3). Changes the server answered `rejected_retryable` stay queued
   * with a retry time (not retried within this call, so they cannot hold back the rest of the queue).
   */
  private async pushAll(): Promise<void> {
    const schema = this.requireSchema()
    const skip = new Set<string>()
    const apply = async (batch: Awaited<ReturnType<typeof readPushBatch>>, res: PushResponse) => {
      const opts = { now: this.cfg.timers.now(), maxAttempts: this.cfg.maxPushAttempts }
      const outcome = await this.db.transaction(
        (tx) => withSyncLock(tx, () => applyPushResults(tx, schema.tables, batch, res, opts)),
        'sync',
      )
      for (const c of outcome.conflicts) this.emitConflict(c)
      for (const l of [...this.pushObservers]) l(outcome)
      return outcome
    }
    for (;;) {
      // Read and mark as attempted in one transaction, before sending: a request whose answer is lost may still
      // have been applied, and the queue merge rules and the push results handling must know it.
      const batch = await this.db.transaction(async (tx) => {
        const b = await readPushBatch(tx, schema.tables, this.cfg.pushBatchSize, skip, this.cfg.timers.now())
        await markAttempted(tx, b.sent)
        return b
      }, 'sync')
      if (batch.changes.length === 0) {
        if (batch.dropped.length === 0) return
        await apply(batch, emptyPush())
        continue
      }
      const res = await this.transport.push({ client_id: this.cfg.clientID, changes: batch.changes, ...this.pair() })
      const outcome = await apply(batch, res)
      for (const r of outcome.retryable) skip.add(queueKey(r.table, r.recordID))
      // Re-queued creates (record_exists after a lost answer) are pushed again as updates by the next iteration.
      const settled = outcome.applied + outcome.requeued + outcome.rejections.length
      // A server that answers without results for our changes would otherwise make us loop forever.
      if (settled + outcome.retryable.length === 0) {
        throw new InvalidResponseError('push response has no result for the pushed changes')
      }
    }
  }

  /**
   * Pull loop (§4.3 step 4). Consecutive pages are applied in one transaction per group of up to
   * APPLY_GROUP_ROWS rows (each page still applied in order, checkpoint stored with the group's last page): a
   * commit rewrites every B-tree page the group touched, so per-page commits dominate catch-up time.
   */
  private async pullAll(): Promise<void> {
    const schema = this.requireSchema()
    let rows = 0
    let pages = 0
    let { checkpoint, known } = await this.db.run(async (ex) => ({
      checkpoint: Number((await getMeta(ex, 'checkpoint')) ?? '0') || 0,
      known: parseBuckets(await getMeta(ex, 'known_buckets')),
    }))
    let group: PullResponse[] = []
    let groupRows = 0
    const flush = async () => {
      if (group.length === 0) return
      const pagesToApply = group
      group = []
      groupRows = 0
      await this.db.transaction((tx) => withSyncLock(tx, () => applyPullGroup(tx, schema.tables, pagesToApply)), 'sync')
    }
    for (;;) {
      const res: PullResponse = await this.transport.pull({
        client_id: this.cfg.clientID,
        checkpoint,
        limit: this.cfg.pullPageSize,
        // Sent even when empty: the server then tells a new client its subscriptions (Decision 19).
        known_buckets: known,
        ...this.pair(),
      })
      if (res.snapshot_required) {
        await flush()
        const reason = res.snapshot_reason ?? 'initial_sync_required'
        await this.snapshotRebuild(reason !== 'initial_sync_required', reason)
        return
      }
      group.push(res)
      groupRows += res.changes.length + res.deletes.length
      rows += res.changes.length + res.deletes.length
      pages++
      known = mergeBuckets(known, res.bucket_updates) ?? known
      if (!res.has_more || groupRows >= APPLY_GROUP_ROWS) await flush()
      if (pages > 1 || res.has_more) {
        this.setStatus({ status: 'syncing', retryAt: null, progress: { phase: 'pull', rows, pages } })
      }
      if (!res.has_more) return
      if (res.checkpoint <= checkpoint) {
        await flush()
        throw new InvalidResponseError('pull has_more without checkpoint progress')
      }
      checkpoint = res.checkpoint
    }
  }

  /**
   * Snapshot rebuild (§4.3 step 5 + Decision 21): push the queue first, ask for approval when required, clear synced
   * rows except those with queued changes, then page /sync/snapshot. The checkpoint and snapshot_complete are stored
   * with the final page only, so an interrupted rebuild starts over.
   */
  private async snapshotRebuild(approval: boolean, reason: string): Promise<void> {
    const schema = this.requireSchema()
    // What could not be pushed stays queued, and its rows survive the rebuild.
    await this.pushAll()
    if (approval && !(await this.approveSnapshot())) throw new SnapshotRequiredError(reason)
    await this.db.transaction((tx) => withSyncLock(tx, () => clearForRebuild(tx, schema)), 'sync')
    let cursor: SnapshotCursor | null = null
    let rows = 0
    let pages = 0
    let group: SnapshotResponse[] = []
    let groupRows = 0
    const tablesTotal = schema.tables.size
    let tablesDone = 0
    const progress = (): SyncProgress => ({ phase: 'snapshot', rows, pages, tablesDone, tablesTotal })
    this.setStatus({ status: 'syncing', retryAt: null, progress: progress() })
    for (;;) {
      const res = await this.transport.snapshot({
        client_id: this.cfg.clientID,
        cursor,
        limit: this.cfg.snapshotPageSize,
        ...this.pair(),
      })
      group.push(res)
      groupRows += res.records.length
      if (!res.has_more || groupRows >= APPLY_GROUP_ROWS) {
        const pagesToApply = group
        group = []
        groupRows = 0
        await this.db.transaction(
          (tx) =>
            withSyncLock(tx, async () => {
              for (const page of pagesToApply) await applySnapshotPage(tx, schema.tables, page.records)
              if (!res.has_more) {
                await setMeta(tx, 'checkpoint', String(res.checkpoint))
                await setMeta(tx, 'snapshot_complete', '1')
              }
            }),
          'sync',
        )
      }
      rows += res.records.length
      pages++
      // The cursor names the table the next page starts in: every table before it is complete.
      tablesDone = res.has_more && res.cursor ? Math.min(res.cursor.table_idx, tablesTotal) : tablesTotal
      this.setStatus({ status: 'syncing', retryAt: null, progress: progress() })
      if (!res.has_more) return
      if (!res.cursor) throw new InvalidResponseError('snapshot has_more without cursor')
      cursor = res.cursor
    }
  }

  private async approveSnapshot(): Promise<boolean> {
    for (const approve of [...this.snapshotApprovers]) {
      let ok: boolean
      try {
        ok = (await approve()) === true
      } catch {
        ok = false
      }
      if (!ok) return false
    }
    return true
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (!this.started) {
        reject(new StoppedSignal())
        return
      }
      const entry = {
        handle: null as unknown,
        reject,
      }
      entry.handle = this.cfg.timers.setTimeout(() => {
        this.sleeps.delete(entry)
        resolve()
      }, ms)
      this.sleeps.add(entry)
    })
  }

  private scheduleTimer(): void {
    this.clearTimer()
    if (!this.started || this.cfg.syncInterval <= 0) return
    const ms = this.cfg.syncInterval * 1000
    this.nextTickAt = this.cfg.timers.now() + ms
    this.timer = this.cfg.timers.setTimeout(() => {
      this.timer = null
      this.nextTickAt = null
      this.requestSync()
        .catch(() => {})
        .finally(() => this.scheduleTimer())
    }, ms)
  }

  private clearTimer(): void {
    if (this.timer !== null) this.cfg.timers.clearTimeout(this.timer)
    this.timer = null
    this.nextTickAt = null
  }

  private scheduleDebouncedPush(): void {
    if (!this.started) return
    const now = this.cfg.timers.now()
    const wait = this.cfg.pushDebounce * 1000
    // The first write after a quiet spell (no cycle started within pushDebounce, nothing debounced) is pushed at
    // once: an idle client has nothing to coalesce it with. (A cycle in flight queues one follow-up cycle.)
    if (this.debounce === null && now - this.lastRunAt >= wait) {
      this.requestSync().catch(() => {})
      return
    }
    // A burst: debounce with a ceiling. Each write pushes the deadline back by pushDebounce, but never past twice
    // that from the first unpushed write — a steady stream of writes must not starve the push.
    if (this.debounce === null) this.debounceSince = now
    else this.cfg.timers.clearTimeout(this.debounce)
    const due = Math.min(now + wait, this.debounceSince + 2 * wait)
    this.debounce = this.cfg.timers.setTimeout(
      () => {
        this.debounce = null
        this.requestSync().catch(() => {})
      },
      Math.max(0, due - now),
    )
  }

  private setStatus(e: StatusEvent): void {
    if (!this.started) return
    this.emit(e)
  }

  private emit(e: StatusEvent): void {
    const prev = this.current
    if (
      prev.status === e.status &&
      prev.retryAt?.getTime() === e.retryAt?.getTime() &&
      prev.error === e.error &&
      prev.progress?.rows === e.progress?.rows &&
      prev.progress?.pages === e.progress?.pages &&
      prev.progress?.phase === e.progress?.phase &&
      prev.progress?.tablesDone === e.progress?.tablesDone
    ) {
      return
    }
    this.current = e
    for (const l of [...this.statusListeners]) {
      try {
        l(e)
      } catch {
        // Listener failures must not break sync.
      }
    }
  }

  private emitConflict(c: ConflictEvent): void {
    for (const l of [...this.conflictListeners]) {
      try {
        l(c)
      } catch {
        // idem
      }
    }
  }
}

function toError(err: unknown): SynchroError {
  if (err instanceof SynchroError) return err
  return new SynchroError('DATABASE_ERROR', err instanceof Error ? err.message : String(err), { cause: err })
}

function emptyPush(): PushResponse {
  return { accepted: [], rejected: [], checkpoint: 0, server_time: '', schema_version: 0, schema_hash: '' }
}
