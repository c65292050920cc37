/**
 * The database worker: loads sqlite-wasm and, once its tab owns the database (Web Locks, see driver.ts), opens it
 * on the `opfs-sahpool` VFS. The VFS needs no COOP/COEP headers but holds exclusive OPFS access handles, so only
 * one worker per origin can have a given pool open — hence one pool per database and one owner tab.
 *
 * Module init (wasm download and compile) starts as soon as the worker starts, before the tab wins the lock, so a
 * handover costs little more than opening the files.
 */
import sqlite3InitModule from '@sqlite.org/sqlite-wasm'
import type { SqlParam } from '../../driver.js'
import type { WorkerRequest, WorkerResponse } from './messages.js'

type Sqlite3 = Awaited<ReturnType<typeof sqlite3InitModule>>
type Db = InstanceType<Sqlite3['oo1']['DB']>
type Stmt = ReturnType<Db['prepare']>
type BindValue = string | number | bigint | Uint8Array | null

interface WorkerScope {
  postMessage(msg: WorkerResponse): void
  addEventListener(type: 'message', cb: (e: MessageEvent<WorkerRequest>) => void): void
}
const scope = globalThis as unknown as WorkerScope

let wasmURL: string | undefined
let sqlite3: Promise<Sqlite3> | null = null
function loadSqlite(): Promise<Sqlite3> {
  // `locateFile` only when the app says where the wasm is; otherwise sqlite-wasm finds it next to its own module.
  sqlite3 ??= (sqlite3InitModule as (arg?: object) => Promise<Sqlite3>)(
    wasmURL ? { locateFile: () => wasmURL } : undefined,
  )
  return sqlite3
}

let db: Db | null = null
const cache = new Map<string, Stmt>()
const CACHE_SIZE = 200

function bind(params: readonly SqlParam[] | undefined): BindValue[] | undefined {
  if (!params || params.length === 0) return undefined
  return params.map((p) => (p === undefined ? null : typeof p === 'boolean' ? (p ? 1 : 0) : p))
}

function prepare(sql: string): Stmt {
  if (!db) throw new Error('database not open')
  let s = cache.get(sql)
  if (s) {
    cache.delete(sql)
    cache.set(sql, s)
    return s
  }
  s = db.prepare(sql)
  cache.set(sql, s)
  if (cache.size > CACHE_SIZE) {
    const [oldest, st] = cache.entries().next().value as [string, Stmt]
    cache.delete(oldest)
    st.finalize()
  }
  return s
}

function clearCache(): void {
  for (const s of cache.values()) s.finalize()
  cache.clear()
}

/** Runs a prepared statement once; returns its rows when it has any, else the changes it made. */
function step(
  sql: string,
  params: readonly SqlParam[] | undefined,
  wantRows: boolean,
): { rows: object[]; changes: number } {
  const s = prepare(sql)
  try {
    const b = bind(params)
    if (b) s.bind(b)
    const rows: object[] = []
    const reader = s.columnCount > 0
    while (s.step()) if (wantRows && reader) rows.push(s.get({}))
    return { rows, changes: reader ? 0 : db!.changes() }
  } finally {
    s.reset(true)
  }
}

async function open(name: string): Promise<void> {
  const s3 = await loadSqlite()
  // One pool (OPFS directory) per database, so two databases never contend for one pool's access handles.
  const dir = `.synchro-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`
  let pool: Awaited<ReturnType<Sqlite3['installOpfsSAHPoolVfs']>> | null = null
  let lastErr: unknown
  // The previous owner's worker may still be letting go of its access handles for a few milliseconds.
  for (let attempt = 0; attempt < 40 && !pool; attempt++) {
    try {
      // preserveOnInitFailure: by default a failed init deletes the whole pool (and the user's data with it).
      pool = await s3.installOpfsSAHPoolVfs({
        name: `synchro-${dir}`,
        directory: dir,
        preserveOnInitFailure: true,
        ...(attempt > 0 ? { forceReinitIfPreviouslyFailed: true } : {}),
      } as Parameters<Sqlite3['installOpfsSAHPoolVfs']>[0])
    } catch (err) {
      lastErr = err
      await new Promise((r) => setTimeout(r, 25 * Math.min(attempt + 1, 8)))
    }
  }
  if (!pool) throw lastErr
  db = new pool.OpfsSAHPoolDb(`/${name}`)
  // No WAL on this VFS (no shared memory); a rollback journal truncated rather than deleted is cheaper on OPFS.
  db.exec('PRAGMA journal_mode = TRUNCATE; PRAGMA foreign_keys = OFF')
}

async function handle(req: WorkerRequest): Promise<Omit<WorkerResponse & { ok: true }, 'id' | 'ok'>> {
  switch (req.op) {
    case 'init': {
      if (req.wasmURL) wasmURL = req.wasmURL
      const s3 = await loadSqlite()
      return { version: s3.version.libVersion }
    }
    case 'open':
      await open(req.name)
      return {}
    case 'all':
      return { rows: step(req.sql, req.params, true).rows as never }
    case 'run':
      return { changes: step(req.sql, req.params, false).changes }
    case 'runMany': {
      let changes = 0
      for (const p of req.paramLists) changes += step(req.sql, p, false).changes
      return { changes }
    }
    case 'exec':
      if (!db) throw new Error('database not open')
      // DDL may drop what cached statements refer to; transaction control (every transaction) must keep the cache.
      if (!/^\s*(BEGIN|COMMIT|ROLLBACK|END|SAVEPOINT|RELEASE)\b/i.test(req.sql)) clearCache()
      db.exec(req.sql)
      return {}
    case 'rollback':
      if (db && (await loadSqlite()).capi.sqlite3_get_autocommit(db.pointer!) === 0) db.exec('ROLLBACK')
      return {}
    case 'close':
      clearCache()
      db?.close()
      db = null
      return {}
  }
}

// One request at a time, in arrival order (opening is asynchronous; statements must not overtake it).
let queue: Promise<unknown> = Promise.resolve()
scope.addEventListener('message', (e) => {
  const req = e.data
  queue = queue
    .then(() => handle(req))
    .then(
      (out) => scope.postMessage({ id: req.id, ok: true, ...out }),
      (err: unknown) => {
        const error =
          err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) }
        scope.postMessage({ id: req.id, ok: false, error })
      },
    )
})
