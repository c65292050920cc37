/**
 * The SDK's single connection: every statement and transaction runs under one FIFO mutex (the driver contract lets
 * drivers be naive about concurrency), and every operation ends with a cheap change check so that `onChange`,
 * `watch` and the debounced push learn what changed — including writes made by triggers.
 *
 * Change observation uses TEMP triggers that bump a per-table counter in a TEMP table. They live only on this
 * connection, are never written to the database file, and exist only for tables somebody observes (plus the
 * pending-changes queue, which the debounced push observes — Decision 20).
 */
import { Mutex, type Row, type SqliteDriver, type SqliteExecutor, type SqlParam } from '../driver.js'
import { ClosedError, DatabaseError, SynchroError } from '../errors.js'
import { ensureLocalTables, PENDING_TABLE } from '../schema/triggers.js'
import { quoteIdent, quoteLiteral } from './sql.js'

/** Who caused a write: the app (queue changes schedule a push) or the sync engine (they do not). */
export type WriteOrigin = 'local' | 'sync'

export type ChangeListener = (tables: string[], origin: WriteOrigin) => void

const OBS_TABLE = 'temp._synchro_observed'

function obsTriggerName(op: 'i' | 'u' | 'd', table: string): string {
  return `_synchro_obs_${op}_${table}`
}

export class LocalDatabase {
  private readonly mutex = new Mutex()
  private driver: SqliteDriver | null = null
  private opening: Promise<SqliteDriver> | null = null
  private closed = false
  private readonly observed = new Map<string, number>()
  private readonly installed = new Set<string>()
  private triggersStale = true
  private lastCounts = new Map<string, number>()
  private readonly listeners = new Set<ChangeListener>()

  constructor(private readonly open: () => Promise<SqliteDriver>) {
    this.observed.set(PENDING_TABLE, 1)
  }

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
          await d.exec(`CREATE TEMP TABLE IF NOT EXISTS _synchro_observed (name TEXT PRIMARY KEY, n INTEGER NOT NULL)`)
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
      if (this.triggersStale || this.installed.size < this.observed.size) await this.installObservers(d)
      let out: T
      try {
        out = await fn(d)
      } catch (err) {
        // A failed statement can still have changed something (autocommit statements before it, DDL).
        changed = await this.collectChanges(d).catch(() => [])
        throw wrapDbError(err, 'database operation failed')
      }
      changed = await this.collectChanges(d)
      return out
    })
    if (changed.length > 0) this.emit(changed, origin)
    return result
  }

  /** Marks the observer triggers for re-installation (after DDL: dropped or new tables). */
  schemaChanged(): void {
    this.triggersStale = true
  }

  /** Starts observing `tables`; returns a function that stops. */
  observe(tables: readonly string[]): () => void {
    for (const t of tables) {
      this.observed.set(t, (this.observed.get(t) ?? 0) + 1)
      if (!this.installed.has(t)) this.triggersStale = true
    }
    let done = false
    return () => {
      if (done) return
      done = true
      for (const t of tables) {
        const n = (this.observed.get(t) ?? 1) - 1
        if (n <= 0) this.observed.delete(t)
        else this.observed.set(t, n)
      }
      // Unused triggers stay until the next install pass drops them; they only cost a counter bump.
      this.triggersStale = true
    }
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

  private async installObservers(d: SqliteDriver): Promise<void> {
    const existing = new Set(
      (await d.all<{ name: string }>(`SELECT name FROM main.sqlite_master WHERE type IN ('table', 'view')`)).map(
        (r) => r.name,
      ),
    )
    const triggers = new Set(
      (await d.all<{ name: string }>(`SELECT name FROM temp.sqlite_master WHERE type = 'trigger'`)).map((r) => r.name),
    )
    const ddl: string[] = []
    this.installed.clear()
    for (const table of this.observed.keys()) {
      if (!existing.has(table)) continue
      this.installed.add(table)
      if (triggers.has(obsTriggerName('i', table))) continue
      const bump = `UPDATE ${OBS_TABLE} SET n = n + 1 WHERE name = ${quoteLiteral(table)};`
      ddl.push(`INSERT OR IGNORE INTO ${OBS_TABLE} (name, n) VALUES (${quoteLiteral(table)}, 0);`)
      for (const [op, ev] of [
        ['i', 'INSERT'],
        ['u', 'UPDATE'],
        ['d', 'DELETE'],
      ] as const) {
        ddl.push(
          `CREATE TEMP TRIGGER IF NOT EXISTS ${quoteIdent(obsTriggerName(op, table))} AFTER ${ev} ON main.${quoteIdent(table)} BEGIN ${bump} END;`,
        )
      }
    }
    for (const name of triggers) {
      const m = /^_synchro_obs_[iud]_(.*)$/.exec(name)
      if (m && !this.installed.has(m[1]!)) ddl.push(`DROP TRIGGER IF EXISTS temp.${quoteIdent(name)};`)
    }
    if (ddl.length > 0) await d.exec(ddl.join('\n'))
    this.triggersStale = false
    this.lastCounts = await this.readCounts(d)
  }

  private async readCounts(d: SqliteExecutor): Promise<Map<string, number>> {
    const rows = await d.all<{ name: string; n: number }>(`SELECT name, n FROM ${OBS_TABLE}`)
    return new Map(rows.map((r) => [r.name, r.n]))
  }

  private async collectChanges(d: SqliteDriver): Promise<string[]> {
    const counts = await this.readCounts(d)
    const changed: string[] = []
    for (const [name, n] of counts) if (this.lastCounts.get(name) !== n) changed.push(name)
    this.lastCounts = counts
    return changed
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
