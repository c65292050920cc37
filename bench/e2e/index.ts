// End-to-end latency: client A commits a local write → client B sees it in its SQLite (`clientWrite`, a steady
// stream of writes); a write made directly in PostgreSQL by another application → client B sees it (`directWrite`);
// and single writes on client A after ≥ 2 s of quiet (`idleWrite`: nothing is in flight, no poke is pending).
// p50/p95/p99 with the SDK's default settings and with the fastest settings it allows. Sizes: BENCH_E2E_WRITES
// (default 500), BENCH_E2E_GAP_MS (pause between writes), BENCH_E2E_IDLE_WRITES (default 20), BENCH_E2E_IDLE_MS.
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { SynchroClient } from '@synchro/client'
import { openBetterSqlite3 } from '@synchro/client/better-sqlite3'
import { createEngine, createSyncHandler, headerAuth, Registry, startWalConsumer } from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { createBenchDatabase, envInt, mergeSummary, percentile, writeResult } from '../lib.js'

interface Settings {
  name: string
  /** undefined: the SDK's default. */
  syncInterval?: number
  pushDebounce?: number
}

const WRITES = envInt('BENCH_E2E_WRITES', 500)
const GAP_MS = envInt('BENCH_E2E_GAP_MS', 40, 1)
const IDLE_WRITES = envInt('BENCH_E2E_IDLE_WRITES', 20, 4)
const IDLE_MS = envInt('BENCH_E2E_IDLE_MS', 2000, 1)
const SETTINGS: Settings[] = [{ name: 'fastest', syncInterval: 0.05, pushDebounce: 0 }, { name: 'default' }]

const db = await createBenchDatabase('bench_e2e')
await db.pool.query(NORTHWIND_SQL)
const registry = new Registry()
for (const t of NORTHWIND_TABLES) registry.register(t)
const engine = await createEngine({ pool: db.pool, registry })
const server = http.createServer(toNodeListener(createSyncHandler(engine, { authenticate: headerAuth() })))
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
const serverURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const consumer = startWalConsumer({
  pool: db.pool,
  registry,
  replicationUrl: db.url,
  slotName: `bench_e2e_${process.pid}`,
})
// Writes made before the slot exists are never captured, and creating a slot waits for every transaction running
// on the cluster to end (slow on a busy machine): measure only once the stream runs.
for (let i = 0; i < 6000 && !consumer.status().running; i++) await new Promise((r) => setTimeout(r, 20))
if (!consumer.status().running) throw new Error('e2e: the WAL consumer did not start within 120 s')
const dir = mkdtempSync(path.join(tmpdir(), 'synchro-e2e-'))

const results: Record<string, unknown> = {}
try {
  for (const s of SETTINGS) {
    // Same pacing for both settings: one write every GAP_MS.
    const gap = GAP_MS
    results[s.name] = await measure(s, gap)
    console.log(s.name, JSON.stringify(results[s.name]))
  }
} finally {
  await consumer.stop()
  await new Promise((r) => server.close(r))
  await engine.close()
  await db.close()
  rmSync(dir, { recursive: true, force: true })
}
const file = writeResult('e2e', { writes: WRITES, idleWrites: IDLE_WRITES, settings: SETTINGS, results })
console.log(`wrote ${file}`)
type Stats = { p50Ms: number; p99Ms: number }
const headline = (r: unknown) => {
  const x = r as Record<'clientWrite' | 'directWrite' | 'idleWrite', Stats | undefined>
  const pick = (st: Stats | undefined) => (st ? { p50Ms: st.p50Ms, p99Ms: st.p99Ms } : undefined)
  return { clientWrite: pick(x.clientWrite), directWrite: pick(x.directWrite), idleWrite: pick(x.idleWrite) }
}
mergeSummary({ e2e: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, headline(v)])) })

async function measure(s: Settings, gapMs: number) {
  const user = randomUUID()
  const mk = async (id: string) =>
    new SynchroClient({
      driver: await openBetterSqlite3(path.join(dir, `${s.name}-${id}.db`)),
      serverURL,
      userID: user,
      clientID: `${s.name}-${id}`,
      appVersion: '1.0.0',
      ...(s.syncInterval === undefined ? {} : { syncInterval: s.syncInterval }),
      ...(s.pushDebounce === undefined ? {} : { pushDebounce: s.pushDebounce }),
      pullPageSize: 1000,
    })
  const a = await mk('a')
  const b = await mk('b')
  await a.start()
  await a.syncNow()
  await b.start()
  await b.syncNow()
  const sentAt = new Map<string, number>()
  const seenAt = new Map<string, number>()
  const unsubscribe = b.onChange(['orders'], () => {
    void b
      .query<{ ship_address: string }>(`SELECT ship_address FROM orders WHERE ship_address LIKE 'lat-%'`)
      .then((rows) => {
        const now = performance.now()
        for (const r of rows) if (!seenAt.has(r.ship_address)) seenAt.set(r.ship_address, now)
      })
  })
  const clientTags: string[] = []
  const directTags: string[] = []
  const settle = async (tags: string[]) => {
    const until = Date.now() + ((s.syncInterval ?? 30) + 30) * 1000
    while (tags.some((t) => !seenAt.has(t)) && Date.now() < until) await new Promise((r) => setTimeout(r, 20))
  }
  // Phase 1: local writes on A only (so nothing else pokes A into pushing early).
  for (let i = 0; i < WRITES / 2; i++) {
    const tag = `lat-${s.name}-client-${i}`
    clientTags.push(tag)
    sentAt.set(tag, performance.now())
    await a.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [randomUUID(), user, tag])
    await new Promise((r) => setTimeout(r, gapMs))
  }
  await settle(clientTags)
  // Phase 2: writes made directly in PostgreSQL by "another application".
  for (let i = 0; i < WRITES / 2; i++) {
    const tag = `lat-${s.name}-direct-${i}`
    directTags.push(tag)
    await db.pool.query('INSERT INTO orders (user_id, ship_address) VALUES ($1, $2)', [user, tag])
    sentAt.set(tag, performance.now())
    await new Promise((r) => setTimeout(r, gapMs))
  }
  await settle(directTags)
  // Phase 3: single writes on A after a quiet period (nothing in flight, nothing debounced, no poke pending).
  const idleTags: string[] = []
  for (let i = 0; i < IDLE_WRITES; i++) {
    await new Promise((r) => setTimeout(r, IDLE_MS))
    const tag = `lat-${s.name}-idle-${i}`
    idleTags.push(tag)
    sentAt.set(tag, performance.now())
    await a.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [randomUUID(), user, tag])
    await settle([tag])
  }
  unsubscribe()
  await a.stop()
  await b.stop()
  await a.close()
  await b.close()
  const stats = (tags: string[]) => {
    const lat = tags.filter((t) => seenAt.has(t)).map((t) => (seenAt.get(t) as number) - (sentAt.get(t) as number))
    return {
      n: tags.length,
      seen: lat.length,
      p50Ms: Math.round(percentile(lat, 50)),
      p95Ms: Math.round(percentile(lat, 95)),
      p99Ms: Math.round(percentile(lat, 99)),
      maxMs: Math.round(Math.max(...lat)),
    }
  }
  return {
    syncInterval: s.syncInterval ?? 'default',
    pushDebounce: s.pushDebounce ?? 'default',
    gapMs,
    idleMs: IDLE_MS,
    clientWrite: stats(clientTags),
    directWrite: stats(directTags),
    idleWrite: stats(idleTags),
  }
}
