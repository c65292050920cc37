// 2. Database restart under load, on a private embedded PostgreSQL (never the machine's shared server): while
// raw-HTTP clients push and pull and SynchroClients sync, PostgreSQL is stopped (fast shutdown), kept down, and
// started again. Every request must get an HTTP answer within the timeout — 200, or 503 with Retry-After while the
// database is away, never a 500 and never a dropped connection — the WAL consumer must reconnect, the clients must
// resume, and nothing may be lost (audit check of the changelog, acknowledged pushes, replicas).
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import {
  createEngine,
  createSyncHandler,
  type Engine,
  ensurePublication,
  ensureSlot,
  headerAuth,
  Registry,
  startWalConsumer,
  type WalConsumer,
} from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import pg from 'pg'
import { AUDIT_SQL, type ChangelogCheck, changelogViolations, checkChangelog } from '../lib/audit.js'
import { type Daemon, freePort, startSynchrod, stopGracefully } from '../lib/daemon.js'
import { ownPostgres, withDatabase } from '../lib/db.js'
import { call, NoAnswer } from '../lib/http.js'
import { Pusher } from '../lib/pusher.js'
import { diffRows, visibleRows } from '../lib/raw-client.js'
import { diffState, localState, SdkPool, serverState } from '../lib/sdk.js'
import { latencySummary, poll, rng, sleep } from '../lib/util.js'

export interface DbRestartOptions {
  /**
   * `daemon`: the synchrod binary. `library`: engine + handler + node adapter + WAL consumer in this process, on a
   * pool whose clients always carry an 'error' listener (the workaround for the daemon crash, see bugs.pg.test.ts).
   */
  mode: 'daemon' | 'library'
  restarts: number
  downMs: number
  clients: number
  sdkClients: number
  seed: number
  /** Per-request answer deadline (ms). */
  timeoutMs?: number
  log?: (line: string) => void
}

export interface DbRestartReport {
  restarts: number
  downMs: number
  durationMs: number
  requests: number
  statuses: Record<string, number>
  noAnswer: { timeout: number; network: number; refused: number }
  latencyMs: ReturnType<typeof latencySummary>
  /** From PostgreSQL accepting connections again to the first 200 push of each client. */
  resumeMs: ReturnType<typeof latencySummary>
  /** From PostgreSQL back to the WAL consumer streaming again. */
  consumerReconnectMs: ReturnType<typeof latencySummary>
  missingRetryAfter: number
  pushes: { acked: number; ambiguous: number; rejected: number }
  changelog: ChangelogCheck
  sdkLostWrites: string[]
  violations: string[]
}

export async function runDbRestart(o: DbRestartOptions): Promise<DbRestartReport> {
  const log = o.log ?? (() => {})
  const timeoutMs = o.timeoutMs ?? 20_000
  const started = Date.now()
  const violations: string[] = []
  const own = await ownPostgres()
  const name = 'rel_restart'
  const admin = new pg.Client({ connectionString: own.url })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const db = { url: withDatabase(own.url, name), name }
  const pool = new pg.Pool({ connectionString: db.url, max: 4 })
  pool.on('error', () => {})
  const sdk = new SdkPool()
  let daemon: Daemon | undefined
  let lib: LibraryServer | undefined
  let stop = false
  const loopsDone: Promise<unknown>[] = []
  try {
    await pool.query(NORTHWIND_SQL)
    await pool.query(AUDIT_SQL)
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    if (o.mode === 'daemon') daemon = await startSynchrod({ db, port })
    else lib = await startLibraryServer(db.url, port)
    await pool.query(NORTHWIND_SEED_SQL)

    const pushers = Array.from({ length: o.clients }, (_, i) => {
      const p = new Pusher(() => base, randomUUID(), rng(o.seed + i), `p${i}`)
      ;(p.client as { timeoutMs: number }).timeoutMs = timeoutMs
      return p
    })
    for (const p of pushers) await p.client.bootstrap()
    const sdkUsers = Array.from({ length: o.sdkClients }, () => randomUUID())
    const sdkClients = sdkUsers.map((u) => sdk.create(base, u, { syncInterval: 0.2, requestTimeout: timeoutMs / 1000 }))
    for (const c of sdkClients) {
      // start() returns once the local database is ready; the first sync (schema, tables) is awaited here.
      await c.start()
      await c.syncNow().catch(() => undefined)
    }
    const r = rng(o.seed)
    let missingRetryAfter = 0
    let tablesRequests = 0
    const extraStatuses: Record<string, number> = {}
    const firstOk = new Map<number, number>()
    let restartedAt = 0

    const loops = pushers.map(async (p, i) => {
      while (!stop) {
        const before = p.client.statuses.get(200) ?? 0
        await p.step().catch((err) => {
          if (!(err instanceof NoAnswer)) violations.push(`${p.tag}: ${err}`)
        })
        if ((p.client.statuses.get(200) ?? 0) > before && restartedAt && !firstOk.has(i))
          firstOk.set(i, Date.now() - restartedAt)
        await sleep(10)
      }
    })
    // Retry-After on every 503, and the GET endpoints (cached manifest or 503, never 500).
    const probe = (async () => {
      while (!stop) {
        for (const route of ['/sync/tables', '/sync/schema']) {
          try {
            const a = await call(base, 'GET', route, { user: sdkUsers[0] ?? 'probe', timeoutMs })
            tablesRequests++
            extraStatuses[a.status] = (extraStatuses[a.status] ?? 0) + 1
            if (a.status === 503 && !/^\d+$/.test(a.headers.get('retry-after') ?? '')) missingRetryAfter++
          } catch (err) {
            if (err instanceof NoAnswer) violations.push(`GET ${route}: no answer (${err.message})`)
          }
        }
        await sleep(50)
      }
    })()
    const sdkWriters = sdkClients.map(async (c, i) => {
      let n = 0
      while (!stop) {
        n++
        await c.execute('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, ?, ?)', [
          randomUUID(),
          sdkUsers[i]!,
          `sdk-${n}`,
          n,
        ])
        await sleep(50 + Math.floor(r() * 50))
      }
    })

    loopsDone.push(...loops, probe, ...sdkWriters)
    const reconnect: number[] = []
    const resume: number[] = []
    for (let k = 0; k < o.restarts; k++) {
      const acked0 = pushers.reduce((s, p) => s + p.counts().acked, 0)
      await poll(() => pushers.reduce((s, p) => s + p.counts().acked, 0) > acked0 + 5, 60_000, 'pushes before restart')
      await own.stop()
      log(`restart ${k + 1}/${o.restarts}: PostgreSQL stopped`)
      await sleep(o.downMs) // the outage itself
      await own.start()
      restartedAt = Date.now()
      firstOk.clear()
      const d = daemon
      const back = await poll(
        async () => {
          if (d && (d.proc.exitCode !== null || d.proc.signalCode !== null)) return 'exited'
          const h = await call(base, 'GET', '/healthz', { timeoutMs: 5000 })
          return h.body?.consumer?.running === true && h.body?.database?.reachable === true && 'ok'
        },
        60_000,
        'consumer streaming again',
        50,
      )
      if (back === 'exited') {
        throw new Error(
          `synchrod exited (${d?.proc.exitCode ?? d?.proc.signalCode}) when PostgreSQL restarted:\n${d?.output().slice(-1500)}`,
        )
      }
      reconnect.push(Date.now() - restartedAt)
      await poll(() => firstOk.size === pushers.length, 60_000, 'every client resumed')
      resume.push(...firstOk.values())
      log(
        `restart ${k + 1}: consumer back after ${reconnect.at(-1)} ms, clients after ≤ ${Math.max(...firstOk.values())} ms`,
      )
    }
    stop = true
    await Promise.all([...loops, probe, ...sdkWriters])
    loopsDone.length = 0

    for (const c of sdkClients) {
      await poll(
        async () => {
          await c.syncNow().catch(() => undefined)
          return (await c.pendingChangeCount()) === 0
        },
        60_000,
        'SDK queue drained',
      )
    }
    const marker = randomUUID()
    await pool.query('INSERT INTO orders (id, user_id) VALUES ($1, $2)', [marker, randomUUID()])
    await poll(
      async () => (await pool.query('SELECT 1 FROM sync_changelog WHERE record_id = $1', [marker])).rowCount,
      60_000,
      'marker',
    )
    for (const c of sdkClients) await c.syncNow()
    for (const p of pushers) if (!(await p.client.pullAll())) violations.push(`${p.tag}: final pull failed`)

    const changelog = await checkChangelog(pool)
    violations.push(...changelogViolations(changelog))
    const statuses: Record<string, number> = { ...extraStatuses }
    const noAnswer = { timeout: 0, network: 0, refused: 0 }
    const latencies: number[] = []
    for (const p of pushers) {
      violations.push(...(await p.verify(pool)))
      violations.push(...diffRows(`${p.tag} replica`, p.client.rows, await visibleRows(pool, p.user)))
      for (const [s, n] of p.client.statuses) statuses[s] = (statuses[s] ?? 0) + n
      noAnswer.timeout += p.client.noAnswer.timeout
      noAnswer.network += p.client.noAnswer.network
      noAnswer.refused += p.client.noAnswer.refused
      latencies.push(...p.client.latencies)
    }
    const sdkLostWrites: string[] = []
    for (const [i, c] of sdkClients.entries()) {
      const server = await serverState(pool, sdkUsers[i]!)
      const local = await localState(c)
      violations.push(...diffState(`sdk${i}`, local, server))
      const rows = await c.query<{ id: string }>('SELECT id FROM orders')
      const onServer = await pool.query('SELECT id::text FROM orders WHERE id = ANY($1::uuid[])', [
        rows.map((x) => x.id),
      ])
      if (onServer.rowCount !== rows.length)
        violations.push(`sdk${i}: ${rows.length - (onServer.rowCount ?? 0)} local rows never reached the server`)
    }
    for (const [s, n] of Object.entries(statuses))
      if (Number(s) >= 500 && s !== '503') violations.push(`${n}× HTTP ${s}`)
    if (noAnswer.timeout + noAnswer.network + noAnswer.refused > 0)
      violations.push(`requests without an HTTP answer: ${JSON.stringify(noAnswer)}`)
    if (missingRetryAfter) violations.push(`${missingRetryAfter} 503 answers without Retry-After`)
    const counts = pushers.reduce(
      (s, p) => {
        const c = p.counts()
        return { acked: s.acked + c.acked, ambiguous: s.ambiguous + c.ambiguous, rejected: s.rejected + c.rejected }
      },
      { acked: 0, ambiguous: 0, rejected: 0 },
    )
    return {
      restarts: o.restarts,
      downMs: o.downMs,
      durationMs: Date.now() - started,
      requests: latencies.length + noAnswer.timeout + noAnswer.network + noAnswer.refused + tablesRequests,
      statuses,
      noAnswer,
      latencyMs: latencySummary(latencies),
      resumeMs: latencySummary(resume),
      consumerReconnectMs: latencySummary(reconnect),
      missingRetryAfter,
      pushes: counts,
      changelog,
      sdkLostWrites,
      violations,
    }
  } finally {
    stop = true
    await Promise.allSettled(loopsDone)
    if (daemon) await stopGracefully(daemon)
    await lib?.close()
    await sdk.close()
    await pool.end().catch(() => {})
    await own.stop().catch(() => {})
    await own.remove()
  }
}

interface LibraryServer {
  close(): Promise<void>
}

/** The library deployment of the README, with /healthz reporting the consumer like the daemon does. */
async function startLibraryServer(url: string, port: number): Promise<LibraryServer> {
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000 })
  pool.on('error', () => {})
  // pg emits socket errors on checked-out clients too; without a listener that is an uncaught exception.
  pool.on('connect', (client) => client.on('error', () => {}))
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  const quiet = { debug() {}, info() {}, warn() {}, error() {} }
  const engine: Engine = await createEngine({ pool, registry, logger: quiet })
  // The slot exists before anything is written, as the daemon's setup does.
  await ensurePublication(pool, registry, 'synchro_pub')
  await ensureSlot(pool, 'rel_restart_slot')
  const consumer: WalConsumer = startWalConsumer({
    pool,
    registry,
    replicationUrl: url,
    slotName: 'rel_restart_slot',
    logger: quiet,
  })
  const handler = createSyncHandler(engine, { authenticate: headerAuth() })
  const listener = toNodeListener(handler)
  const server = http.createServer(async (req, res) => {
    if (req.url === '/healthz') {
      let reachable = true
      await pool.query('SELECT 1').catch(() => {
        reachable = false
      })
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ database: { reachable }, consumer: consumer.status() }))
      return
    }
    await listener(req, res)
  })
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()))
  return {
    async close() {
      const closed = new Promise<void>((r) => server.close(() => r()))
      server.closeAllConnections() // long-lived streams (live channel) would keep close() waiting
      await closed
      await consumer.stop().catch(() => {})
      await engine.close().catch(() => {})
      await pool.end().catch(() => {})
    },
  }
}
