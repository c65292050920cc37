/**
 * The SDK's single connection: every statement and transaction runs under one FIFO mutex (the driver contract lets
 * drivers be naive about concurrency), and every operation ends with a cheap change check so that `onChange`,
 * `watch` and the debounced push learn what changed — including writes made by triggers (store/observers.ts).
 */
import { Mutex, type Row, type SqliteDriver, type SqliteExecutor, type SqlParam } from '../driver.js'
import { ClosedError, DatabaseError, SynchroError } from '../errors.js'
import { ensureLocalTables } from '../schema/triggers.js'
import { ChangeObservers, OBS_TABLE_DDL } from './observers.js'

/** Who caused a write: the app (queue changes schedule a push) or the sync engine (they do not). */
export type WriteOrigin = 'local' | 'sync'

export type ChangeListener = (tables: string[], origin: WriteOrigin) => void

export class LocalDatabase {
  private readonly mutex = new Mutex()
  private driver: SqliteDriver | null = null
  private opening: Promise<SqliteDriver> | null = null
  private closed = false
  private readonly observers = new ChangeObservers()
  private readonly listeners = new Set<ChangeListener>()

  constructor(private readonly open: () => Promise<SqliteDriver>) {}

  /** Opens the driver and creates (or upgrades) the local bookkeeping tables (idempotent). */
  init(): Promise<SqliteDriver> {
    if (this.closed) return Promise.reject(new ClosedError())
    if (this.driver) return Promise.resolve(this.driver)
    if (!this.opening) {
      this.opening = (async () => {
        let d: SqliteDriver
        try {
          d = await this.open()
          await ensureLocalTables(d)
          await d.exec(OBS_TABLE_DDL)
        } catch (err) {
          this.opening = null
          throw wrapDbError(err, 'cannot open the local database')
        }
        this.driver = d
        return d
      })()
    }
    return this.opening
  }

  /** Runs `fn` with the connection, outside a transaction, under the mutex. */
  run<T>(fn: (ex: SqliteExecutor) => Promise<T>, origin: WriteOrigin = 'local'): Promise<T> {
    return this.locked(origin, (d) => fn(d))
  }

  /** Runs `fn` in a write transaction under the mutex; rolls back when it throws. */
  transaction<T>(fn: (tx: SqliteExecutor) => Promise<T>, origin: WriteOrigin = 'local'): Promise<T> {
    return this.locked(origin, (d) => d.transaction(fn))
  }

  private async locked<T>(origin: WriteOrigin, fn: (d: SqliteDriver) => Promise<T>): Promise<T> {
    const d = await this.init()
    let changed: string[] = []
    const result = await this.mutex.run(async () => {
      if (this.closed) throw new ClosedError()
      // An observed table that does not exist yet (created later by plain SQL) is looked for again on every call.
      if (this.observers.due) await this.observers.install(d)
      let out: T
      try {
        out = await fn(d)
      } catch (err) {
        // A failed statement can still have changed something (autocommit statements before it, DDL).
        changed = await this.observers.collect(d).catch(() => [])
        throw wrapDbError(err, 'database operation failed')
      }
      changed = await this.observers.collect(d)
      return out
    })
    if (changed.length > 0) this.emit(changed, origin)
    return result
  }

  /** Marks the observer triggers for re-installation (after DDL: dropped or new tables). */
  schemaChanged(): void {
    this.observers.schemaChanged()
  }

  /** Starts observing `tables`; returns a function that stops. */
  observe(tables: readonly string[]): () => void {
    return this.observers.observe(tables)
  }

  addListener(l: ChangeListener): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }

  private emit(tables: string[], origin: WriteOrigin): void {
    for (const l of [...this.listeners]) {
      try {
        l(tables, origin)
      } catch {
        // A listener's failure must not break the write that triggered it.
      }
    }
  }

  /** Closes the connection after the operations already queued have run. */
  async close(): Promise<void> {
    if (this.closed) return
    const d = this.driver ?? (this.opening ? await this.opening.catch(() => null) : null)
    await this.mutex.run(async () => {
      this.closed = true
      if (d) await d.close()
    })
  }

  get isClosed(): boolean {
    return this.closed
  }
}

/** Reads one `_synchro_meta` value. */
export async function getMeta(ex: SqliteExecutor, key: string): Promise<string | null> {
  const rows = await ex.all<{ value: string }>('SELECT value FROM _synchro_meta WHERE key = ?', [key])
  return rows[0]?.value ?? null
}

export async function setMeta(ex: SqliteExecutor, key: string, value: string): Promise<void> {
  await ex.run(
    'INSERT INTO _synchro_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    [key, value],
  )
}

/** Applies server data with the CDC triggers silenced (§4.2 sync lock), inside the caller's transaction. */
export async function withSyncLock<T>(tx: SqliteExecutor, fn: () => Promise<T>): Promise<T> {
  await tx.run(`UPDATE _synchro_meta SET value = '1' WHERE key = 'sync_lock'`)
  const out = await fn()
  await tx.run(`UPDATE _synchro_meta SET value = '0' WHERE key = 'sync_lock'`)
  return out
}

/** Carries an error thrown by application code through the database layer unchanged (see `passThrough`). */
export class PassThrough {
  constructor(readonly error: unknown) {}
}

/** Runs app code inside an SDK transaction: whatever it throws reaches the caller as thrown, never wrapped. */
export async function passThrough<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw new PassThrough(err)
  }
}

/** Unwraps `PassThrough`; everything else is rethrown as is. */
export function unwrapPassThrough(err: unknown): never {
  throw err instanceof PassThrough ? err.error : err
}

export function wrapDbError(err: unknown, message: string): SynchroError | PassThrough {
  if (err instanceof SynchroError || err instanceof PassThrough) return err
  const detail = err instanceof Error ? err.message : String(err)
  return new DatabaseError(`${message}: ${detail}`, err)
}

export type { Row, SqlParam }
