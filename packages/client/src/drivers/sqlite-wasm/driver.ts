/**
 * `openSqliteWasm()`: the official sqlite-wasm build on the `opfs-sahpool` VFS, in a dedicated worker that the SDK
 * creates. Every tab that opens the same database name gets a driver; the tab elected with Web Locks owns the
 * database (its worker opens the files), and `SynchroClient` routes the other tabs' statements to it (src/tabs/).
 * Used directly (without SynchroClient), the driver's statements wait until this tab owns the database.
 */
import type { RunResult, SqliteDriver, SqliteExecutor, SqlParam } from '../../driver.js'
import { ClosedError } from '../../errors.js'
import type { TabCoordination } from '../../tabs/types.js'
import { WorkerConnection, type WorkerLike } from './connection.js'
import { BrowserTabs } from './tabs.js'

export interface SqliteWasmOptions {
  /** Database file name (one OPFS pool per name; default `synchro.sqlite3`). Tabs share a database by name. */
  name?: string
  /**
   * URL of `sqlite3.wasm`. Default: next to sqlite-wasm's own module, which Vite handles by itself; with esbuild,
   * copy `@sqlite.org/sqlite-wasm/sqlite3.wasm` next to the worker bundle or give its URL here.
   */
  wasmURL?: string
  /**
   * Creates the database worker. Default: `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`,
   * the pattern Vite and webpack bundle on their own; with esbuild, build `@synchro/client/sqlite-wasm/worker` as an
   * entry point and return `new Worker('/path/to/worker.js', { type: 'module' })`.
   */
  createWorker?: () => WorkerLike
}

/** The driver plus what SynchroClient needs to share it between tabs. */
export interface SqliteWasmDriver extends SqliteDriver {
  readonly tabs: TabCoordination
  /** The SQLite version of the loaded wasm (resolves once the worker has loaded it). */
  readonly sqliteVersion: Promise<string>
}

function defaultWorker(): WorkerLike {
  return new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'synchro-db' }) as WorkerLike
}

export async function openSqliteWasm(options: SqliteWasmOptions = {}): Promise<SqliteWasmDriver> {
  const name = options.name ?? 'synchro.sqlite3'
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new TypeError(`invalid database name ${JSON.stringify(name)}`)
  // Start the worker (and its wasm download) before the election: a tab that takes over is ready sooner.
  const conn = new WorkerConnection((options.createWorker ?? defaultWorker)())
  const sqliteVersion = conn
    .request({ op: 'init', ...(options.wasmURL ? { wasmURL: options.wasmURL } : {}) })
    .then((r) => r.version ?? '')
  sqliteVersion.catch(() => {})
  const tabs = new BrowserTabs(name)
  let opened!: () => void
  const ownership = new Promise<void>((r) => {
    opened = r
  })
  tabs.elect(async () => {
    await sqliteVersion
    await conn.request({ op: 'open', name })
    opened()
  })
  await tabs.ready
  let closed = false

  const whenOwned = async <T>(fn: () => Promise<T>): Promise<T> => {
    if (closed) throw new ClosedError()
    await ownership
    return fn()
  }
  const ex: SqliteExecutor = {
    all: (sql, params) => whenOwned(() => conn.all(sql, params)),
    run: (sql, params) => whenOwned(async () => ({ changes: await conn.run(sql, params) })),
    exec: (sql) => whenOwned(async () => void (await conn.request({ op: 'exec', sql }))),
    runMany: (sql: string, paramLists: readonly (readonly SqlParam[])[]): Promise<RunResult> =>
      whenOwned(async () => ({ changes: (await conn.request({ op: 'runMany', sql, paramLists })).changes ?? 0 })),
  }

  let txTail: Promise<unknown> = Promise.resolve()
  return {
    ...ex,
    tabs,
    sqliteVersion,
    transaction<T>(fn: (tx: SqliteExecutor) => Promise<T>): Promise<T> {
      // The SDK serialises transactions; this queue protects direct users of the driver.
      const next = txTail.then(async () => {
        await ex.exec('BEGIN IMMEDIATE')
        try {
          const out = await fn(ex)
          await ex.exec('COMMIT')
          return out
        } catch (err) {
          await conn.request({ op: 'rollback' }).catch(() => {})
          throw err
        }
      })
      txTail = next.catch(() => {})
      return next
    },
    async close(): Promise<void> {
      if (closed) return
      closed = true
      if (tabs.isOwner()) await conn.request({ op: 'close' }).catch(() => {})
      // The worker must let go of its OPFS handles before the lock goes to the next tab.
      conn.terminate(new ClosedError())
      tabs.close()
    },
  }
}
