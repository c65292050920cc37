/**
 * `SynchroClient`: a local SQLite database that syncs with a Synchro server. The SQL API works offline and before
 * `start()`; sync runs in the background once started.
 */
import { type ResolvedConfig, resolveConfig, type SynchroClientConfig } from './config.js'
import type { Row, SqliteExecutor, SqlParam } from './driver.js'
import { PENDING_TABLE } from './schema/triggers.js'
import { LocalDatabase, passThrough, unwrapPassThrough, wrapDbError } from './store/database.js'
import {
  alterLocalTable,
  type ColumnDef,
  type CreateTableOptions,
  createIndex,
  createLocalTable,
} from './store/local-tables.js'
import { watchQuery } from './store/watch.js'
import { awaitWait, Confirmations } from './sync/confirm.js'
import { type ConflictEvent, type SnapshotApprover, type StatusEvent, SyncEngine } from './sync/engine.js'
import {
  deleteRejections,
  listRejections,
  REJECTIONS_TABLE,
  type Rejection,
  RejectionEvents,
} from './sync/rejections.js'
import { Transport } from './sync/transport.js'
import { type ClientDatabase, SharedDatabase } from './tabs/shared-database.js'
import { TabSync } from './tabs/tab-sync.js'

export type { ColumnDef, CreateTableOptions } from './store/local-tables.js'

export type Unsubscribe = () => void

/** The statements available inside `readTransaction` / `writeTransaction`. */
export interface Transaction {
  query<T = Row>(sql: string, params?: readonly SqlParam[]): Promise<T[]>
  queryOne<T = Row>(sql: string, params?: readonly SqlParam[]): Promise<T | null>
  execute(sql: string, params?: readonly SqlParam[]): Promise<ExecuteResult>
}

export interface ExecuteResult {
  rowsAffected: number
}

export interface BatchStatement {
  sql: string
  params?: readonly SqlParam[]
}

export type CheckpointMode = 'passive' | 'full' | 'restart' | 'truncate'

function txApi(ex: SqliteExecutor): Transaction {
  // Same error shape as the client's own methods: SQLite failures become DatabaseError (cause kept).
  const wrap = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      throw wrapDbError(err, 'database operation failed')
    }
  }
  return {
    query: <T>(sql: string, params?: readonly SqlParam[]) => wrap(() => ex.all<T>(sql, params)),
    queryOne: <T>(sql: string, params?: readonly SqlParam[]) =>
      wrap(async () => (await ex.all<T>(sql, params))[0] ?? null),
    execute: (sql, params) => wrap(async () => ({ rowsAffected: (await ex.run(sql, params)).changes })),
  }
}

/**
 * The SDK's public surface. One piece: one class on purpose, though longer than the ~150-line rule: it is the API users read,
 * and each member is a documented entry point of a few lines that delegates to store/ (SQL, local tables, watch),
 * sync/ (the engine, confirmations, rejections) or tabs/ (multi-tab sync).
 */
export class SynchroClient {
  private readonly cfg: ResolvedConfig
  private readonly db: ClientDatabase
  private readonly engine: SyncEngine
  /** Set when the driver is shared by several tabs: only the owner tab syncs (src/tabs/). */
  private readonly tabs: TabSync | null = null
  private readonly rejectionEvents = new RejectionEvents()
  private readonly confirmations = new Confirmations()

  /** Validates the config (throws `ConfigError`); opens nothing until first use. */
  constructor(config: SynchroClientConfig) {
    this.cfg = resolveConfig(config)
    const local = new LocalDatabase(this.cfg.openDriver)
    const transport = new Transport({
      serverURL: this.cfg.serverURL,
      fetch: this.cfg.fetch,
      appVersion: this.cfg.appVersion,
      timeoutMs: this.cfg.requestTimeout * 1000,
      ...(this.cfg.authProvider ? { authProvider: this.cfg.authProvider } : {}),
      ...(this.cfg.userID !== undefined ? { userID: this.cfg.userID } : {}),
      ...(this.cfg.tracer ? { tracer: this.cfg.tracer } : {}),
    })
    this.engine = new SyncEngine(this.cfg, local, transport)
    this.engine.pushObservers.add((o) => {
      this.confirmations.settle(o.settled)
      this.rejectionEvents.emitRejected(o.rejections)
    })
    const driver = config.driver
    if (driver?.tabs) {
      const shared = new SharedDatabase(local, driver.tabs, () => driver.close())
      this.tabs = new TabSync(driver.tabs, local, this.engine, shared)
      this.db = shared
    } else {
      this.db = local
    }
    // A tab that does not run the engine learns of answers from the queue it shares with the owner tab.
    this.db.addListener((tables) => {
      if (this.tabs?.isOwner === false && tables.includes(PENDING_TABLE) && this.confirmations.waiting) {
        this.db.run((ex) => this.confirmations.recheck(ex)).catch(() => {})
      }
    })
  }

  /** Opens the database and creates the SDK's tables. Optional: every call does it on first use. */
  async initialize(): Promise<void> {
    await this.db.init()
  }

  // ── SQL ─────────────────────────────────────────────────────────────────────────────────────────────────────────

  /** Runs a statement and returns its rows. */
  query<T = Row>(sql: string, params?: readonly SqlParam[]): Promise<T[]> {
    return this.db.run((ex) => ex.all<T>(sql, params))
  }

  /** First row or null. */
  async queryOne<T = Row>(sql: string, params?: readonly SqlParam[]): Promise<T | null> {
    return (await this.query<T>(sql, params))[0] ?? null
  }

  /**
   * Runs a write. On synced tables the CDC triggers queue the change; a `DELETE` becomes a soft delete (so it
   * reports 0 rows affected: SQLite does not count rows changed by triggers).
   */
  async execute(sql: string, params?: readonly SqlParam[]): Promise<ExecuteResult> {
    return { rowsAffected: (await this.db.run((ex) => ex.run(sql, params))).changes }
  }

  /** Runs statements in one transaction; all or nothing. */
  async executeBatch(statements: readonly BatchStatement[]): Promise<{ totalRowsAffected: number }> {
    const total = await this.db.transaction(async (tx) => {
      let n = 0
      for (const s of statements) n += (await tx.run(s.sql, s.params)).changes
      return n
    })
    return { totalRowsAffected: total }
  }

  /**
   * Runs `fn` in a write transaction; rolls back when it throws. Use only `tx` inside: calling the client itself
   * from within waits for the transaction to end (deadlock).
   */
  writeTransaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.db.transaction((ex) => passThrough(() => fn(txApi(ex)))).catch(unwrapPassThrough)
  }

  /** Runs `fn` with a consistent view (nothing else runs on the connection meanwhile). */
  readTransaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    return this.db.transaction((ex) => passThrough(() => fn(txApi(ex)))).catch(unwrapPassThrough)
  }

  // ── Local-only schema ───────────────────────────────────────────────────────────────────────────────────────────

  /** Creates a local-only table (never synced, never touched by schema migration). */
  async createTable(name: string, columns: readonly ColumnDef[], options: CreateTableOptions = {}): Promise<void> {
    await createLocalTable(this.db, name, columns, options)
  }

  /** Adds the columns that `name` does not have yet (local-only tables). */
  async alterTable(name: string, columns: readonly ColumnDef[]): Promise<void> {
    await alterLocalTable(this.db, name, columns)
  }

  /** Creates an index (`idx_<table>_<columns>`) if missing. Works on synced tables too. */
  async createIndex(table: string, columns: readonly string[], unique = false): Promise<void> {
    await createIndex(this.db, table, columns, unique)
  }

  // ── Observation ─────────────────────────────────────────────────────────────────────────────────────────────────

  /** Calls `cb` with the changed tables after any write (local or sync) that touched one of `tables`. */
  onChange(tables: readonly string[], cb: (changedTables: string[]) => void): Unsubscribe {
    const wanted = new Set(tables)
    const stopObserving = this.db.observe(tables)
    const stopListening = this.db.addListener((changed) => {
      const hit = changed.filter((t) => wanted.has(t))
      if (hit.length > 0) cb(hit)
    })
    return () => {
      stopListening()
      stopObserving()
    }
  }

  /** Runs `sql` now and again whenever one of `tables` changes; re-runs are coalesced. */
  watch<T = Row>(
    sql: string,
    params: readonly SqlParam[] | undefined,
    tables: readonly string[],
    cb: (rows: T[]) => void,
    onError?: (err: unknown) => void,
  ): Unsubscribe {
    return watchQuery(
      () => this.query<T>(sql, params),
      (onChanged) => this.onChange(tables, onChanged),
      cb,
      onError,
    )
  }

  /** Number of records with a change not yet accepted by the server. */
  async pendingChangeCount(): Promise<number> {
    const r = await this.queryOne<{ n: number }>('SELECT count(*) AS n FROM _synchro_pending_changes')
    return r?.n ?? 0
  }

  /** WAL checkpoint. */
  async checkpoint(mode: CheckpointMode = 'passive'): Promise<void> {
    await this.db.run((ex) => ex.all(`PRAGMA wal_checkpoint(${mode.toUpperCase()})`))
  }

  /** The database path given in the config (null when a driver was passed in). */
  getPath(): string | null {
    return this.cfg.dbPath
  }

  /** Stops sync and closes the database; pending `confirmed()` / `flush()` promises reject with `CLOSED`. */
  async close(): Promise<void> {
    await (this.tabs ? this.tabs.close() : this.engine.stop())
    this.confirmations.close()
    await this.db.close()
  }

  // ── Sync ────────────────────────────────────────────────────────────────────────────────────────────────────────

  /**
   * Starts sync and resolves as soon as the local database is ready: the first cycle (schema, migration, register,
   * bootstrap snapshot when needed) runs in the background, then the timer. Its outcome shows in `onStatusChange`
   * (offline is a normal state); `await syncNow()` waits for a cycle. Rejects with `ALREADY_STARTED` when started
   * twice.
   */
  start(): Promise<void> {
    return this.tabs ? this.tabs.start() : this.engine.start()
  }

  /** Stops timers and retries; resolves when the cycle in flight has finished. */
  stop(): Promise<void> {
    return this.tabs ? this.tabs.stop() : this.engine.stop()
  }

  /** Runs a push-then-pull cycle now (joining the running one's rerun); rejects with its final failure. */
  syncNow(): Promise<void> {
    return this.tabs ? this.tabs.syncNow() : this.engine.syncNow()
  }

  /** The last status event. */
  get status(): StatusEvent {
    return this.tabs ? this.tabs.status : this.engine.status
  }

  onStatusChange(cb: (e: StatusEvent) => void): Unsubscribe {
    this.engine.statusListeners.add(cb)
    return () => this.engine.statusListeners.delete(cb)
  }

  onConflict(cb: (e: ConflictEvent) => void): Unsubscribe {
    this.engine.conflictListeners.add(cb)
    return () => this.engine.conflictListeners.delete(cb)
  }

  /**
   * Asked before a snapshot rebuild that would replace local data (not for the first bootstrap). Any handler that
   * answers false (or throws) refuses; no handler means approved.
   */
  onSnapshotRequired(handler: SnapshotApprover): Unsubscribe {
    this.engine.snapshotApprovers.add(handler)
    return () => this.engine.snapshotApprovers.delete(handler)
  }

  // ── Rejections and confirmation ─────────────────────────────────────────────────────────────────────────────────

  /** Writes the server did not apply (oldest first); they stay until `clearRejections`. Survives restarts. */
  rejections(): Promise<Rejection[]> {
    return this.db.run((ex) => listRejections(ex))
  }

  /** Removes the given rejections (by `id`), or all of them. */
  async clearRejections(ids?: readonly number[]): Promise<void> {
    await this.db.run((ex) => deleteRejections(ex, ids))
  }

  /**
   * Called for every new rejection (see `rejections()`), in the tab that syncs. Without any listener each reason is
   * logged once.
   */
  onRejected(cb: (r: Rejection) => void): Unsubscribe {
    this.rejectionEvents.rejectedListeners.add(cb)
    return () => this.rejectionEvents.rejectedListeners.delete(cb)
  }

  /** Called whenever the list of `rejections()` changes (added or cleared): re-read it. */
  onRejectionsChange(cb: () => void): Unsubscribe {
    return this.onChange([REJECTIONS_TABLE], () => cb())
  }

  /**
   * Resolves when the server has applied every write made so far to the record `recordID` of `table` (at once when
   * nothing is queued for it); rejects with `WriteRejectedError` (`.rejection`) when the latest such write was
   * rejected, and with `CLOSED` when the client is closed first. Works across offline periods; after a restart, ask
   * again.
   */
  async confirmed(table: string, recordID: string): Promise<void> {
    const wait = await this.db.run((ex) => this.confirmations.confirmed(ex, table, recordID))
    if (wait.done) this.kick()
    return awaitWait(wait)
  }

  /**
   * Resolves when every write made so far has been pushed and answered (applied or rejected: see `rejections()`).
   * While offline it waits; rejects with `CLOSED` when the client is closed first.
   */
  async flush(): Promise<void> {
    const wait = await this.db.run((ex) => this.confirmations.flush(ex))
    if (wait.done) this.kick()
    return awaitWait(wait)
  }

  /** Pushes soon when started (the waiters would otherwise wait for the debounce or the timer). */
  private kick(): void {
    if (this.tabs) this.tabs.syncNow().catch(() => {})
    else if (this.engine.isStarted) this.engine.syncNow().catch(() => {})
  }

  /** Sync cycles run so far (diagnostics). */
  get syncCycles(): number {
    return this.engine.cycles
  }
}
