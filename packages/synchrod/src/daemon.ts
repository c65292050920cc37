import { accessSync, constants, statSync } from 'node:fs'
import {
  type Authenticator,
  createEngine,
  createSyncHandler,
  type Engine,
  ensurePublication,
  ensureSlot,
  ensureTableIndexes,
  headerAuth,
  jwtAuth,
  type LiveFrames,
  lastWriteWins,
  type Registry,
  runMigrations,
  serverWins,
  startWalConsumer,
  type WalConsumer,
} from '@synchro/server'
import { warnNoDdlWatch } from '@synchro/server/internal'
import type pg from 'pg'
import { databaseLabel, readStatus } from './commands/status.js'
import { buildRegistry, type Settings } from './config.js'
import {
  assertLogical,
  checkReplicationTarget,
  checkUrl,
  createPool,
  type Database,
  describeUrl,
  missingTables,
  type OpenOptions,
  openDatabase,
  StartupError,
} from './database.js'
import { DEMO_SCHEMA_SQL, DEMO_SEED_SQL } from './demo.js'
import { type DaemonServer, type HealthReport, parseListenAddr, startServer } from './http.js'
import type { Log } from './logger.js'
import { Metrics } from './metrics.js'
import { ConfigError, type Options } from './options/index.js'
import { statusPageRoutes } from './status-page/status-page.js'
import { staticFiles } from './web/static-files.js'

type DaemonOptions = Pick<
  Options,
  | 'databaseUrl'
  | 'replicationUrl'
  | 'dataDir'
  | 'demo'
  | 'listenAddr'
  | 'slotName'
  | 'publicationName'
  | 'shutdownTimeoutMs'
  | 'logLevel'
  | 'embeddedRestarts'
>

/** A configured spill directory must exist and be writable now, not when the first big transaction arrives. */
function checkSpillDir(dir: string | undefined): void {
  if (dir === undefined) return
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory')
    accessSync(dir, constants.W_OK)
  } catch (err) {
    throw new ConfigError(`--wal-spill-dir (WAL_SPILL_DIR) ${dir}: not a writable directory (${errMessage(err)})`)
  }
}

/** Authentication from the settings; a JWKS endpoint is fetched once so a wrong URL fails at startup (§1.2). */
async function authenticator(o: Options, log: Log): Promise<Authenticator> {
  if (o.jwtSecret && o.jwksUrl) throw new StartupError('JWT_SECRET and JWKS_URL are both set: set only one')
  // Header mode only when asked for or when no authentication option is given at all (blank ones are refused
  // while options are read): a half-configured production never falls back to trusting X-User-ID.
  if (o.devHeaderAuth === true && (o.jwtSecret || o.jwksUrl)) {
    throw new ConfigError(
      `--dev-header-auth (SYNCHRO_DEV_HEADER_AUTH) trusts X-User-ID, but ${o.jwtSecret ? 'JWT_SECRET' : 'JWKS_URL'} ` +
        'is set too: drop one of them',
    )
  }
  if (o.devHeaderAuth === false && !o.jwtSecret && !o.jwksUrl) {
    throw new ConfigError(
      'SYNCHRO_DEV_HEADER_AUTH=false (--no-dev-header-auth) requires authentication, but neither JWT_SECRET nor ' +
        'JWKS_URL is set',
    )
  }
  if (o.jwtSecret) return jwtAuth({ secret: o.jwtSecret, userClaim: o.jwtUserClaim })
  if (o.jwksUrl) {
    let ok = false
    let why = ''
    try {
      const res = await fetch(o.jwksUrl, { signal: AbortSignal.timeout(10_000) })
      const body = (await res.json().catch(() => null)) as { keys?: unknown } | null
      ok = res.ok && Array.isArray(body?.keys)
      why = res.ok ? 'no "keys" array in the response' : `HTTP ${res.status}`
    } catch (err) {
      why = (err as Error).message
    }
    if (!ok) throw new StartupError(`JWKS_URL ${o.jwksUrl}: cannot load the key set (${why})`)
    return jwtAuth({ jwksUrl: o.jwksUrl, userClaim: o.jwtUserClaim })
  }
  log.warn(
    { auth: 'x-user-id' },
    '!!! AUTHENTICATION IS OFF: neither JWT_SECRET nor JWKS_URL is set, so the X-User-ID header is trusted as the ' +
      'user id and anyone can act as any user. Use this for local development only. !!!',
  )
  return headerAuth()
}

/** Advisory-lock key serialising daemon setup across processes (migrations use their own key inside it). */
const SETUP_LOCK = 91110043

export interface Prepared {
  db: Database
  registry: Registry
}

/**
 * Opens the database and makes it ready for the registered tables: logical WAL, demo schema, migrations,
 * tables present, publication and slot. Idempotent, so every instance of a scale-out deployment runs it.
 */
export async function prepareDatabase(
  settings: Settings,
  o: DaemonOptions,
  log: Log,
  supervise?: OpenOptions['supervise'],
): Promise<Prepared> {
  const registry = buildRegistry(settings)
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log, supervise })
  try {
    await assertLogical(db.pool)
    // Instances of a scale-out deployment start together: CREATE … IF NOT EXISTS is not safe against concurrent
    // runs (duplicate pg_type rows), so the whole setup runs under one session advisory lock.
    const setup = await db.pool.connect()
    try {
      await setup.query('SELECT pg_advisory_lock($1)', [SETUP_LOCK])
      if (o.demo) await setup.query(DEMO_SCHEMA_SQL)
      warnNoDdlWatch(log, (await runMigrations(db.pool)).ddlWatch)
      const tables = registry.tables()
      const missing = await missingTables(
        db.pool,
        tables.map((t) => t.sqlName),
      )
      if (missing.length > 0) {
        throw new StartupError(
          `registered tables not found in the database: ${missing.join(', ')} (create them first, or run with --demo)`,
        )
      }
      const indexes = await ensureTableIndexes(db.pool, registry)
      if (indexes.created.length > 0) log.info({ indexes: indexes.created }, 'created table indexes')
      for (const f of indexes.failed) log.warn({ index: f.name, error: f.error, sql: f.sql }, 'could not create index')
      // The slot exists from the first start on, so changes made before a consumer first runs are not lost.
      await ensurePublication(db.pool, registry, o.publicationName)
      const slot = await ensureSlot(db.pool, o.slotName)
      if (slot.created) log.info({ slot: o.slotName }, 'created replication slot')
      // Seeding after the slot exists sends the demo rows through the WAL consumer like any other write.
      if (o.demo) await setup.query(DEMO_SEED_SQL)
    } finally {
      await setup.query('SELECT pg_advisory_unlock($1)', [SETUP_LOCK]).catch(() => {})
      setup.release()
    }
    return { db, registry }
  } catch (err) {
    await db.close()
    throw err
  }
}

/** Runs `serve` (HTTP + optional consumer) or `consume` (consumer + health/metrics) until SIGINT/SIGTERM. */
export async function runDaemon(settings: Settings, mode: 'serve' | 'consume', log: Log): Promise<void> {
  const o = settings.options as Options
  const listen = parseListenAddr(o.listenAddr)
  if (o.databaseUrl) checkUrl(o.databaseUrl, 'DATABASE_URL')
  if (o.replicationUrl) checkUrl(o.replicationUrl, 'REPLICATION_URL')
  if (o.replicationUrl && !o.databaseUrl)
    throw new StartupError('REPLICATION_URL is set but DATABASE_URL is not: set both, to the same database')
  // Validate everything that needs no database first: config mistakes fail in milliseconds.
  buildRegistry(settings)
  if (mode === 'consume' || o.consumer !== false) checkSpillDir(o.walSpillDir)
  const authenticate = mode === 'serve' ? await authenticator(o, log) : undefined
  const devHeaderAuth = !o.jwtSecret && !o.jwksUrl
  // Only with an explicit --web: a production config never serves files by accident.
  const web =
    mode === 'serve' && o.webDir ? await staticFiles(o.webDir, { auth: devHeaderAuth ? 'header' : 'jwt' }) : undefined

  // An embedded PostgreSQL that dies is restarted; when it cannot be, the daemon exits non-zero (a supervisor such as
  // systemd or Kubernetes then restarts both) instead of answering 503 forever.
  let lost: (err: Error) => void = () => {}
  const databaseLost = new Promise<Error>((resolve) => {
    lost = resolve
  })
  const { db, registry } = await prepareDatabase(settings, o, log, { maxAttempts: o.embeddedRestarts, onLost: lost })
  let engine: Engine | undefined
  let consumer: WalConsumer | undefined
  let server: DaemonServer | undefined
  let stopping = false
  const withConsumer = mode === 'consume' || o.consumer !== false

  // /healthz gets its own connection: it must answer in well under a second even when request work fills the pool.
  const healthPool = createPool(db.url, 1)
  const cleanup = async () => {
    await consumer?.stop().catch((err: unknown) => log.error({ err: errMessage(err) }, 'consumer stop failed'))
    await engine?.close().catch(() => {})
    await healthPool.end().catch(() => {})
    await db.close()
  }

  try {
    const metrics = new Metrics({ pool: db.pool, slotName: o.slotName, consumer: () => consumer })
    if (mode === 'serve') {
      engine = await startEngine(db, registry, o, metrics, log)
    }
    if (withConsumer) {
      if (o.replicationUrl) await checkReplicationTarget(db.pool, o.replicationUrl)
      consumer = startWalConsumer({
        pool: db.pool,
        registry,
        replicationUrl: o.replicationUrl ?? db.url,
        slotName: o.slotName,
        publicationName: o.publicationName,
        streaming: o.walStreaming,
        spillDir: o.walSpillDir,
        logicalDecodingWorkMem: o.walDecodingWorkMem,
        logger: log.child({ component: 'wal' }),
      })
    }

    const health = healthCheck(healthPool, () => ({ stopping, consumer }))
    const syncHandler = engine
      ? createSyncHandler(engine, {
          authenticate: authenticate ?? headerAuth(),
          onResponse: (info) => metrics.observe(info),
          logger: log.child({ component: 'http' }),
          requestTimeoutMs: o.requestTimeoutMs,
          maxInFlight: o.maxInFlight,
          maxInFlightPerUser: o.maxInFlightPerUser,
          maxBodyBytesInFlight: o.maxBodyBytesInFlight,
        })
      : undefined
    // `consume` has no authentication (its options are serve's): no status page there, only health and metrics.
    const status =
      mode !== 'serve'
        ? async () => null
        : statusPageRoutes({
            readReport: () =>
              readStatus(db.pool, o.slotName, databaseLabel(db, o), { staleThresholdMs: o.compactionStaleThresholdMs }),
            stats: metrics.stats,
            liveStreams: () => metrics.liveStreams,
            consumer: () => consumer?.status() ?? null,
            adminToken: o.adminToken,
            devHeaderAuth,
          })
    const routes = async (request: Request, path: string) => (await status(request, path)) ?? web?.(request, path)
    // One history point every 2 s for the status page's request-rate chart.
    setInterval(() => metrics.stats.tick(), 2_000).unref()
    server = await startServer({ listen, syncHandler, health, routes, metrics, log })
  } catch (err) {
    await cleanup()
    throw err
  }

  log.info(
    {
      mode,
      database: db.embedded ? `embedded (${o.dataDir})` : describeUrl(db.url),
      tables: registry.tables().map((t) => t.tableName),
      consumer: withConsumer,
      slot: o.slotName,
      publication: o.publicationName,
    },
    `listening on ${server.url}`,
  )
  // The ready line must reach stdout even when the log level hides info lines (scripts wait for it).
  if (!log.isLevelEnabled('info')) process.stdout.write(`synchrod listening on ${server.url}\n`)

  const running = server
  const failure = await new Promise<Error | undefined>((resolve) => {
    const shutdown = (signal: NodeJS.Signals | Error) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting immediately')
        process.exit(1)
      }
      stopping = true
      // PostgreSQL exiting from here on is expected (a terminal's Ctrl-C reaches it too).
      db.embedded?.unsupervise()
      if (signal instanceof Error) log.fatal({ error: signal.message }, 'shutting down: the database is gone')
      else log.info({ signal }, 'shutting down: no new connections, finishing in-flight requests')
      void (async () => {
        // Live event streams never finish on their own: end them so in-flight requests are all that is waited for.
        engine?.endLiveStreams()
        await running.close(signal instanceof Error ? 1_000 : o.shutdownTimeoutMs)
        await cleanup()
        log.info('stopped')
        resolve(signal instanceof Error ? signal : undefined)
      })()
    }
    process.on('SIGINT', shutdown)
    process.on('SIGTERM', shutdown)
    void databaseLost.then(shutdown)
  })
  if (failure) throw new StartupError(failure.message)
}

/** The engine of `serve` mode, configured from the options and counted by the daemon's metrics. */
async function startEngine(db: Database, registry: Registry, o: Options, metrics: Metrics, log: Log): Promise<Engine> {
  const engine = await createEngine({
    pool: db.pool,
    registry,
    conflictResolver:
      o.conflictResolver === 'server_wins'
        ? serverWins()
        : lastWriteWins({ clockSkewToleranceMs: o.clockSkewToleranceMs }),
    clockSkewToleranceMs: o.clockSkewToleranceMs,
    minClientVersion: o.minClientVersion,
    maxJsonDepth: o.maxJsonDepth,
    maxClientsPerUser: o.maxClientsPerUser,
    hooks: metrics.hooks(),
    logger: log.child({ component: 'engine' }),
    compaction: {
      intervalMs: o.compactionIntervalMs,
      staleThresholdMs: o.compactionStaleThresholdMs,
      batchSize: o.compactionBatchSize,
    },
    migrate: false, // done in prepareDatabase
    live: { listen: o.liveListen, frames: o.liveFrames as LiveFrames },
    pullReadAhead: o.pullReadAhead,
  })
  metrics.instrument(engine)
  return engine
}

/** The /healthz report: database reachability on its own pool, and the consumer's state. */
function healthCheck(
  healthPool: pg.Pool,
  state: () => { stopping: boolean; consumer: WalConsumer | undefined },
): () => Promise<HealthReport> {
  return async () => {
    const started = performance.now()
    let reachable = true
    let error: string | undefined
    try {
      await withTimeout(healthPool.query('SELECT 1'), 2_000)
    } catch (err) {
      reachable = false
      error = errMessage(err)
    }
    const { stopping, consumer } = state()
    const c = consumer?.status()
    return {
      status: stopping ? 'shutting_down' : reachable ? 'ok' : 'unavailable',
      database: { reachable, latencyMs: Math.round(performance.now() - started), ...(error ? { error } : {}) },
      consumer: c ? { enabled: true, ...c } : { enabled: false },
    }
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}
