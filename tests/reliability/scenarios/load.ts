// 6. Load: many simulated clients push and pull concurrently against the daemon on loopback for a fixed time.
// Records error rate, latency percentiles per endpoint, and the daemon's RSS over the run (start/end/peak).
import { randomUUID } from 'node:crypto'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL } from '@synchro/test-harness/northwind'
import { type Daemon, freePort, startSynchrod, stopGracefully } from '../lib/daemon.js'
import { createDb } from '../lib/db.js'
import { NoAnswer } from '../lib/http.js'
import { RawClient } from '../lib/raw-client.js'
import { latencySummary, poll, rssMiB, sleep } from '../lib/util.js'

export interface LoadOptions {
  root: string
  clients: number
  seconds: number
  log?: (line: string) => void
}

export interface LoadReport {
  clients: number
  seconds: number
  requests: number
  errors: number
  errorRate: number
  statuses: Record<string, number>
  throughputPerSec: number
  latencyMs: { push: ReturnType<typeof latencySummary>; pull: ReturnType<typeof latencySummary> }
  rssMiB: { start: number; end: number; peak: number; samples: number; growthPct: number; flagged: boolean }
  pushedRecords: number
  missingAcked: number
  violations: string[]
}

export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  const log = o.log ?? (() => {})
  const db = await createDb(o.root, 'rel_load')
  const violations: string[] = []
  let daemon: Daemon | undefined
  try {
    await db.pool.query(NORTHWIND_SQL)
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    daemon = await startSynchrod({ db, port })
    await db.pool.query(NORTHWIND_SEED_SQL)
    const pid = daemon.proc.pid!
    const clients = Array.from({ length: o.clients }, () => new RawClient(() => base, randomUUID(), undefined, 30_000))
    // Bootstrap in waves (a real fleet does not register in the same millisecond).
    for (let i = 0; i < clients.length; i += 25) await Promise.all(clients.slice(i, i + 25).map((c) => c.bootstrap()))
    const rss: number[] = []
    const sampler = setInterval(() => {
      const m = rssMiB(pid)
      if (m !== undefined) rss.push(m)
    }, 500)
    rss.push(rssMiB(pid) ?? 0)
    const push: number[] = []
    const pull: number[] = []
    const acked: string[] = []
    let errors = 0
    const statuses: Record<string, number> = {}
    const until = Date.now() + o.seconds * 1000
    const started = Date.now()
    await Promise.all(
      clients.map(async (c, i) => {
        let n = 0
        while (Date.now() < until) {
          n++
          const changes = Array.from({ length: 1 + (n % 5) }, () => ({
            id: randomUUID(),
            table_name: 'orders',
            operation: 'create' as const,
            data: { ship_address: `load-${i}-${n}`, total_cents: n, metadata: { n, i } },
            client_updated_at: new Date().toISOString(),
          }))
          try {
            const a = await c.push(changes)
            push.push(a.ms)
            statuses[a.status] = (statuses[a.status] ?? 0) + 1
            if (a.status !== 200) errors++
            else for (const r of a.body.accepted) acked.push(r.id)
            const p = await c.pullOnce(100)
            pull.push(p.ms)
            statuses[p.status] = (statuses[p.status] ?? 0) + 1
            if (p.status !== 200) errors++
          } catch (err) {
            errors++
            if (!(err instanceof NoAnswer)) throw err
            statuses.noAnswer = (statuses.noAnswer ?? 0) + 1
          }
          await sleep(20)
        }
      }),
    )
    const elapsed = (Date.now() - started) / 1000
    clearInterval(sampler)
    rss.push(rssMiB(pid) ?? 0)
    const { rows } = await db.pool.query<{ n: string }>(
      'SELECT count(*)::text AS n FROM orders WHERE id = ANY($1::uuid[])',
      [acked],
    )
    const missingAcked = acked.length - Number(rows[0]!.n)
    if (missingAcked) violations.push(`${missingAcked} acknowledged records missing`)
    // The consumer keeps up: the last acknowledged record reaches the changelog.
    if (acked.length)
      await poll(
        async () => (await db.pool.query('SELECT 1 FROM sync_changelog WHERE record_id = $1', [acked.at(-1)])).rowCount,
        60_000,
        'consumer caught up',
      )
    const requests = push.length + pull.length + (statuses.noAnswer ?? 0)
    for (const s of Object.keys(statuses))
      if (s === 'noAnswer' || Number(s) >= 500) violations.push(`${statuses[s]}× ${s}`)
    const start = rss[0]!
    const end = rss.at(-1)!
    const peak = Math.max(...rss)
    // Growth is judged from the first quarter of the run (after warm-up) to the end.
    const warm = rss[Math.floor(rss.length / 4)] ?? start
    const growthPct = Math.round(((end - warm) / warm) * 1000) / 10
    log(
      `load: ${requests} requests in ${elapsed.toFixed(1)} s, errors ${errors}, rss ${start}→${end} MiB (peak ${peak})`,
    )
    return {
      clients: o.clients,
      seconds: o.seconds,
      requests,
      errors,
      errorRate: requests ? errors / requests : 0,
      statuses,
      throughputPerSec: Math.round(requests / elapsed),
      latencyMs: { push: latencySummary(push), pull: latencySummary(pull) },
      rssMiB: { start, end, peak, samples: rss.length, growthPct, flagged: growthPct > 50 },
      pushedRecords: acked.length,
      missingAcked,
      violations,
    }
  } finally {
    if (daemon) await stopGracefully(daemon)
    await db.drop()
  }
}
