// Fan-out: one writer, BENCH_FANOUT_CLIENTS (1 000) live clients spread over BENCH_FANOUT_USERS (100) users, all
// subscribed to their user's bucket and the shared `global` bucket, on ONE synchrod process. BENCH_FANOUT_SDK (20)
// of them are real SynchroClients with SQLite (default settings); the rest are light protocol clients (event
// stream + pull, bench/fanout/light.ts). The writer changes rows directly in PostgreSQL: an order of one user (its
// 10 clients are affected) or, every BENCH_FANOUT_GLOBAL_EVERY-th write, a product (global: every client). Per write:
// the time from its commit until EVERY affected client has pulled it. Server CPU (the synchrod process, capture
// included) is read from /proc: per delivered change during the writes, and per idle stream while nothing happens.
// Sizes: BENCH_FANOUT_WRITES (60), BENCH_FANOUT_GAP_MS (500), BENCH_FANOUT_IDLE_MS (10 000).
import { spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { SynchroClient } from '@synchro/client'
import { openBetterSqlite3 } from '@synchro/client/better-sqlite3'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { type Daemon, startDaemon } from '@synchro/test-harness/synchrod'
import { createBenchDatabase, envInt, mergeSummary, percentile, writeResult } from '../lib.js'
import { closeAgents, LightClient } from './light.js'

const CLIENTS = envInt('BENCH_FANOUT_CLIENTS', 1000)
const USERS = Math.max(1, envInt('BENCH_FANOUT_USERS', 100))
const SDK = Math.min(CLIENTS, envInt('BENCH_FANOUT_SDK', 20, 1))
const WRITES = envInt('BENCH_FANOUT_WRITES', 60)
const GAP_MS = envInt('BENCH_FANOUT_GAP_MS', 500, 1)
const GLOBAL_EVERY = envInt('BENCH_FANOUT_GLOBAL_EVERY', 5, 1)
const IDLE_MS = envInt('BENCH_FANOUT_IDLE_MS', 10_000, 1)
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100

const dir = mkdtempSync(path.join(tmpdir(), 'synchro-fanout-'))
const db = await createBenchDatabase('bench_fanout')
await db.pool.query(NORTHWIND_SQL)
const config = path.join(dir, 'config.json')
writeFileSync(config, JSON.stringify({ tables: NORTHWIND_TABLES }))
const daemon: Daemon = await startDaemon(['serve', '--config', config], {
  cwd: dir,
  timeoutMs: 60_000,
  env: {
    DATABASE_URL: db.url,
    LISTEN_ADDR: '127.0.0.1:0',
    SLOT_NAME: `bench_fanout_${process.pid}`,
    LOG_LEVEL: 'warn',
  },
})
await db.pool.query(NORTHWIND_SEED_SQL)
const base = new URL(daemon.url)
const products = (await db.pool.query<{ id: string }>('SELECT id::text AS id FROM products')).rows.map((r) => r.id)

/** Per write: when it committed, how many clients it affects, and when each of them first pulled it. */
interface Delivery {
  sentAt: number
  expected: number
  seen: Set<number>
  lastAt: number
  latencies: number[]
  sdkLatencies: number[]
  global: boolean
}
const deliveries = new Map<string, Delivery>()
const record = (client: number, tag: string) => {
  const d = deliveries.get(tag)
  if (!d || d.seen.has(client)) return
  const now = performance.now()
  d.seen.add(client)
  d.latencies.push(now - d.sentAt)
  if (client < SDK) d.sdkLatencies.push(now - d.sentAt)
  d.lastAt = now
}

const users = Array.from({ length: USERS }, () => randomUUID())
const userOf = (i: number) => users[i % USERS] as string
const light: LightClient[] = []
const sdk: SynchroClient[] = []
const result: Record<string, unknown> = {}
try {
  // SDK clients first (client index 0 … SDK-1), then the light ones; client i belongs to user i % USERS.
  for (let i = 0; i < SDK; i++) {
    const c = new SynchroClient({
      driver: await openBetterSqlite3(path.join(dir, `sdk-${i}.db`)),
      serverURL: base.origin,
      userID: userOf(i),
      clientID: `sdk-${i}`,
      appVersion: '1.0.0',
    })
    await c.start()
    c.onChange(['orders', 'products'], () => {
      void c
        .query<{ tag: string }>(
          `SELECT ship_address AS tag FROM orders WHERE ship_address LIKE 'fan-%'
           UNION ALL SELECT name FROM products WHERE name LIKE 'fan-%'`,
        )
        .then((rows) => {
          for (const r of rows) record(i, r.tag)
        })
    })
    sdk.push(c)
  }
  const t0 = performance.now()
  for (let i = SDK; i < CLIENTS; i += 50) {
    const batch = Array.from(
      { length: Math.min(50, CLIENTS - i) },
      (_, k) => new LightClient(base, userOf(i + k), `light-${i + k}`, (tag) => record(i + k, tag)),
    )
    await Promise.all(batch.map((c) => c.bootstrap()))
    await Promise.all(batch.map((c) => c.listen()))
    light.push(...batch)
  }
  console.log(`${CLIENTS} clients connected in ${Math.round(performance.now() - t0)} ms`)
  // Every client (SDK ones included: live is on by default) holds one event stream.
  const streams = CLIENTS

  // Idle: every stream open, nothing written.
  await sleep(2000)
  const idle0 = cpuMs(daemon)
  await sleep(IDLE_MS)
  const idleCpu = cpuMs(daemon) - idle0

  const w0 = cpuMs(daemon)
  const own0 = process.cpuUsage()
  const tw = performance.now()
  for (let n = 0; n < WRITES; n++) {
    const tag = `fan-${n}-${randomUUID().slice(0, 8)}`
    const global = n % GLOBAL_EVERY === GLOBAL_EVERY - 1
    const user = n % USERS
    const expected = global ? CLIENTS : Math.floor(CLIENTS / USERS) + (user < CLIENTS % USERS ? 1 : 0)
    const d: Delivery = { sentAt: 0, expected, seen: new Set(), lastAt: 0, latencies: [], sdkLatencies: [], global }
    deliveries.set(tag, d)
    if (global) {
      await db.pool.query('UPDATE products SET name = $2, updated_at = clock_timestamp() WHERE id = $1', [
        products[n % products.length],
        tag,
      ])
    } else {
      await db.pool.query('INSERT INTO orders (user_id, ship_address) VALUES ($1, $2)', [users[user], tag])
    }
    d.sentAt = performance.now()
    await sleep(GAP_MS)
  }
  const until = performance.now() + 60_000
  while ([...deliveries.values()].some((d) => d.seen.size < d.expected) && performance.now() < until) await sleep(50)
  const writeCpu = cpuMs(daemon) - w0
  const own = process.cpuUsage(own0)
  const writeSeconds = (performance.now() - tw) / 1000

  const all = [...deliveries.values()]
  const complete = (ds: Delivery[]) => ds.filter((d) => d.seen.size >= d.expected).map((d) => d.lastAt - d.sentAt)
  const stats = (xs: number[]) => ({
    n: xs.length,
    p50Ms: Math.round(percentile(xs, 50)),
    p95Ms: Math.round(percentile(xs, 95)),
    p99Ms: Math.round(percentile(xs, 99)),
    maxMs: Math.round(Math.max(...xs)),
  })
  const delivered = all.reduce((s, d) => s + d.seen.size, 0)
  const incomplete = all.filter((d) => d.seen.size < d.expected).length
  Object.assign(result, {
    clients: CLIENTS,
    streams,
    users: USERS,
    sdkClients: SDK,
    writes: WRITES,
    gapMs: GAP_MS,
    globalEvery: GLOBAL_EVERY,
    incompleteWrites: incomplete,
    // Which ones, and how many of their affected clients had them (diagnostics).
    incomplete: [...deliveries.entries()]
      .filter(([, d]) => d.seen.size < d.expected)
      .map(([tag, d]) => ({ tag, global: d.global, seen: d.seen.size, expected: d.expected })),
    // Until every affected client has pulled the write.
    allAffected: stats(complete(all)),
    userWrites: stats(complete(all.filter((d) => !d.global))),
    globalWrites: stats(complete(all.filter((d) => d.global))),
    // The first affected client of a global write: capture → notify → render, without the spread over 1 000 streams.
    globalFirst: stats(all.filter((d) => d.global && d.latencies.length > 0).map((d) => Math.min(...d.latencies))),
    // Every (write, client) pair on its own.
    perDelivery: stats(all.flatMap((d) => d.latencies)),
    sdkOnly: stats(all.flatMap((d) => d.sdkLatencies)),
    deliveries: delivered,
    pulls: light.reduce((s, c) => s + c.pulls, 0),
    framesApplied: light.reduce((s, c) => s + c.frames, 0),
    pullRequest: stats(light.flatMap((c) => c.pullMs)),
    cpu: {
      writePhaseMs: Math.round(writeCpu),
      writePhaseSeconds: Math.round(writeSeconds * 10) / 10,
      perDeliveredChangeMs: Math.round((writeCpu / Math.max(1, delivered)) * 1000) / 1000,
      // This process (the 1 000 clients, SDK ones with SQLite) during the writes: the receiving side's share.
      clientsWritePhaseMs: Math.round((own.user + own.system) / 1000),
      idleWindowMs: IDLE_MS,
      idleMs: Math.round(idleCpu),
      perIdleStreamMsPerMinute: Math.round((idleCpu / streams / (IDLE_MS / 60_000)) * 1000) / 1000,
    },
  })
  console.log(JSON.stringify(result, null, 2))
} finally {
  for (const c of light) c.close()
  closeAgents()
  for (const c of sdk) await c.stop().catch(() => {})
  for (const c of sdk) await c.close().catch(() => {})
  daemon.proc.kill('SIGTERM')
  await Promise.race([daemon.exited, sleep(15_000)])
  daemon.kill()
  await db.close()
  rmSync(dir, { recursive: true, force: true })
}
const file = writeResult('fanout', result)
console.log(`wrote ${file}`)
const headline = result.allAffected as { p50Ms: number; p99Ms: number }
const cpu = result.cpu as { perDeliveredChangeMs: number; perIdleStreamMsPerMinute: number }
mergeSummary({
  fanout: {
    clients: CLIENTS,
    p50Ms: headline.p50Ms,
    p99Ms: headline.p99Ms,
    incompleteWrites: result.incompleteWrites,
    cpuPerDeliveredChangeMs: cpu.perDeliveredChangeMs,
    cpuPerIdleStreamMsPerMinute: cpu.perIdleStreamMsPerMinute,
  },
})

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** CPU time (user + system) the process has used so far, from /proc. */
function cpuMs(d: Daemon): number {
  const stat = readFileSync(`/proc/${d.proc.pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK
}
