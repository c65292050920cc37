// 7. Stalled database: a private embedded PostgreSQL is frozen with SIGSTOP (every process of that instance, never the
// machine's shared server) while clients push, pull, register and read /sync/tables and /sync/schema against the
// library deployment. Every request must be answered while the database is frozen — 503 + Retry-After within the
// request deadline, never a hang until the database resumes — and after SIGCONT service must come back with nothing
// lost, nothing applied that was answered 503, and no pull bookkeeping committed for an answer that was not sent.
import { randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import {
  createEngine,
  createSyncHandler,
  ensurePublication,
  ensureSlot,
  headerAuth,
  Registry,
  startWalConsumer,
} from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import pg from 'pg'
import { freePort } from 'synchrod/embedded'
import { ownPostgres, withDatabase } from '../lib/db.js'
import { type Answer, call, NoAnswer } from '../lib/http.js'
import { latencySummary, poll, sleep } from '../lib/util.js'

export interface StallOptions {
  /** How long PostgreSQL stays frozen. */
  stallMs: number
  clients: number
  /** The handler's requestTimeoutMs. */
  deadlineMs: number
  log?: (line: string) => void
}

export interface StallReport {
  stallMs: number
  deadlineMs: number
  requests: number
  statuses: Record<string, number>
  /** Latency of the answers to requests sent while PostgreSQL was frozen. */
  duringStall: ReturnType<typeof latencySummary>
  /** From SIGCONT until every client had a 200 push and pull again. */
  recoveryMs: number
  pushes: { acked: number; refused: number }
  violations: string[]
}

/** The postmaster of a data folder and every process it forked (backends, walsenders, background workers). */
function instanceProcesses(dataDir: string): number[] {
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may contain spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === postmaster) children.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return [postmaster, ...children]
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // exited meanwhile
    }
  }
}

export async function runStall(o: StallOptions): Promise<StallReport> {
  const log = o.log ?? (() => {})
  const violations: string[] = []
  const statuses: Record<string, number> = {}
  const own = await ownPostgres()
  const admin = new pg.Client({ connectionString: own.url })
  await admin.connect()
  await admin.query('CREATE DATABASE rel_stall')
  await admin.end()
  const url = withDatabase(own.url, 'rel_stall')
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000 })
  const quiet = { debug() {}, info() {}, warn() {}, error() {} }
  let frozen: number[] = []
  let server: http.Server | undefined
  const stops: (() => Promise<unknown>)[] = []
  try {
    await pool.query(NORTHWIND_SQL)
    const registry = new Registry()
    for (const t of NORTHWIND_TABLES) registry.register(t)
    const engine = await createEngine({ pool, registry, logger: quiet })
    stops.push(() => engine.close())
    await ensurePublication(pool, registry, 'synchro_pub')
    await ensureSlot(pool, 'rel_stall_slot')
    const consumer = startWalConsumer({
      pool,
      registry,
      replicationUrl: url,
      slotName: 'rel_stall_slot',
      logger: quiet,
    })
    stops.push(() => consumer.stop())
    await pool.query(NORTHWIND_SEED_SQL)
    const handler = createSyncHandler(engine, {
      authenticate: headerAuth(),
      logger: quiet,
      requestTimeoutMs: o.deadlineMs,
      retryAfterSeconds: 1,
    })
    server = http.createServer(toNodeListener(handler))
    const port = await freePort()
    await new Promise<void>((r) => server?.listen(port, '127.0.0.1', () => r()))
    const base = `http://127.0.0.1:${port}`

    // Phase bookkeeping: when PostgreSQL was frozen and resumed (performance.now()).
    let stoppedAt = Number.POSITIVE_INFINITY
    let resumedAt = Number.POSITIVE_INFINITY
    const stallLatencies: number[] = []
    let requests = 0
    const acked = new Set<string>()
    const refused = new Set<string>()

    const send = async (user: string, method: string, route: string, body?: unknown): Promise<Answer | undefined> => {
      const t0 = performance.now()
      requests++
      let a: Answer
      try {
        a = await call(base, method, route, { user, body, timeoutMs: 60_000 })
      } catch (err) {
        violations.push(`${route}: no answer (${err instanceof NoAnswer ? err.message : String(err)})`)
        return undefined
      }
      const t1 = performance.now()
      statuses[a.status] = (statuses[a.status] ?? 0) + 1
      if (a.status >= 500 && a.status !== 503) violations.push(`${route} → ${a.status} ${a.text.slice(0, 120)}`)
      if (a.status === 503 && !a.headers.get('retry-after')) violations.push(`${route} → 503 without Retry-After`)
      if (t0 >= stoppedAt && t0 < resumedAt) {
        stallLatencies.push(t1 - t0)
        // Sent while frozen, long enough before the resume that its deadline passed well within the stall, and yet
        // answered only after the resume: it hung on the database instead of answering 503.
        if (t1 > resumedAt && resumedAt - t0 > o.deadlineMs + 3_000) {
          violations.push(`${route}: sent ${Math.round(resumedAt - t0)} ms before the resume, answered only after it`)
        }
      }
      return a
    }

    const users = Array.from({ length: o.clients }, () => randomUUID())
    const pair = { schema_version: 0, schema_hash: '' }
    for (const u of users) {
      const reg = await send(u, 'POST', '/sync/register', {
        client_id: 'dev',
        platform: 't',
        app_version: '1',
        ...pair,
      })
      pair.schema_version = reg?.body.schema_version
      pair.schema_hash = reg?.body.schema_hash
      const snap = await send(u, 'POST', '/sync/snapshot', { client_id: 'dev', ...pair, limit: 1000 })
      if (snap?.status !== 200) throw new Error(`setup snapshot → ${snap?.status}`)
    }
    const answered = new Map<string, number>(users.map((u) => [u, 0]))
    const lastOk = new Map<string, { push: number; pull: number }>(users.map((u) => [u, { push: 0, pull: 0 }]))
    let stop = false
    const loops = users.map(async (u, i) => {
      for (let n = 0; !stop; n++) {
        const id = randomUUID()
        const p = await send(u, 'POST', '/sync/push', {
          client_id: 'dev',
          ...pair,
          changes: [{ id, table_name: 'orders', operation: 'create', data: { ship_address: `stall ${i}/${n}` } }],
        })
        if (p?.status === 200) {
          if (p.body.accepted?.[0]?.id === id) acked.add(id)
          else violations.push(`push 200 without applying: ${JSON.stringify(p.body.rejected?.[0])}`)
          ;(lastOk.get(u) as { push: number }).push = performance.now()
        } else if (p?.status === 503) refused.add(id)
        const q = await send(u, 'POST', '/sync/pull', { client_id: 'dev', checkpoint: answered.get(u), ...pair })
        if (q?.status === 200) {
          if (!q.body.snapshot_required) answered.set(u, Math.max(answered.get(u) ?? 0, q.body.checkpoint))
          ;(lastOk.get(u) as { pull: number }).pull = performance.now()
        }
        if (n % 4 === 0) await send(u, 'GET', n % 8 === 0 ? '/sync/tables' : '/sync/schema')
        if (n % 5 === 0)
          await send(u, 'POST', '/sync/register', { client_id: 'dev', platform: 't', app_version: '1', ...pair })
        await sleep(20)
      }
    })

    // Warm up until pushes land in the changelog, then freeze PostgreSQL.
    await poll(async () => acked.size >= o.clients * 3, 60_000, 'warm-up pushes')
    frozen = instanceProcesses(own.dataDir)
    signalAll(frozen, 'SIGSTOP')
    stoppedAt = performance.now()
    log(`PostgreSQL frozen (${frozen.length} processes) for ${o.stallMs} ms`)
    // The loops may all be waiting on requests sent just before the freeze (a COMMIT under way is waited for): one more
    // push and pull sent well inside the stall make sure requests sent while frozen are answered 503 in time.
    const probe = (async () => {
      await sleep(Math.min(1_000, o.stallMs / 4))
      const u = users[0] as string
      const id = randomUUID()
      const changes = [{ id, table_name: 'orders', operation: 'create', data: { ship_address: 'stall probe' } }]
      const p = await send(u, 'POST', '/sync/push', { client_id: 'dev', ...pair, changes })
      if (p?.status === 200 && p.body.accepted?.[0]?.id === id) acked.add(id)
      else if (p?.status === 503) refused.add(id)
      await send(u, 'POST', '/sync/pull', { client_id: 'dev', checkpoint: answered.get(u), ...pair })
    })()
    await sleep(o.stallMs)
    signalAll(frozen, 'SIGCONT')
    frozen = []
    resumedAt = performance.now()
    log('PostgreSQL resumed')
    await poll(
      () => [...lastOk.values()].every((t) => t.push > resumedAt && t.pull > resumedAt),
      60_000,
      'every client served again after the resume',
    ).catch((err: Error) => violations.push(err.message))
    const recoveryMs = Math.round(Math.max(...[...lastOk.values()].map((t) => Math.min(t.push, t.pull))) - resumedAt)
    stop = true
    await Promise.all([...loops, probe])
    if (stallLatencies.length === 0) violations.push('no request was sent while PostgreSQL was frozen')

    // Nothing lost, nothing applied that was answered 503.
    const stored = new Set(
      (
        await pool.query<{ id: string }>('SELECT id::text FROM orders WHERE id = ANY($1::uuid[])', [
          [...acked, ...refused],
        ])
      ).rows.map((r) => r.id),
    )
    for (const id of acked) if (!stored.has(id)) violations.push(`acknowledged push lost: ${id}`)
    for (const id of refused) if (stored.has(id)) violations.push(`push answered 503 was applied anyway: ${id}`)
    // Bookkeeping only with answers: the stored checkpoint never passes what a 200 pull returned.
    const { rows } = await pool.query<{ user_id: string; seq: string | null }>(
      `SELECT user_id, last_pull_seq::text AS seq FROM sync_clients WHERE client_id = 'dev'`,
    )
    for (const r of rows) {
      const max = answered.get(r.user_id) ?? 0
      if (Number(r.seq ?? 0) > max) violations.push(`stored checkpoint ${r.seq} past every answered pull (${max})`)
    }
    return {
      stallMs: o.stallMs,
      deadlineMs: o.deadlineMs,
      requests,
      statuses,
      duringStall: latencySummary(stallLatencies),
      recoveryMs,
      pushes: { acked: acked.size, refused: refused.size },
      violations,
    }
  } finally {
    if (frozen.length > 0) signalAll(frozen, 'SIGCONT')
    if (server) {
      server.closeAllConnections()
      await new Promise<void>((r) => server?.close(() => r()))
    }
    for (const s of stops.reverse()) await s().catch(() => {})
    await pool.end().catch(() => {})
    await own.stop().catch(() => {})
    await own.remove().catch(() => {})
  }
}
