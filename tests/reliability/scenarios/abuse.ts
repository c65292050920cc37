// 10. Abuse against the daemon binary (JWT mode): hostile identities and register fields (NUL in /sync/events query
// parameters, 3 000-character incompressible client ids and token subjects, multi-megabyte client names, more clients
// than a user may have), then bursts of concurrent maximum-size pushes — from many users at once and from one user.
// Bad input must get a 4xx JSON error, never a 500; overload must get 429/503 + Retry-After, never a crash; the daemon's
// RSS must stay bounded and /healthz must keep answering quickly throughout; every acknowledged record must be stored.
import { randomBytes, randomUUID } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { SignJWT } from 'jose'
import { type Daemon, freePort, startSynchrod, stopGracefully } from '../lib/daemon.js'
import { createDb } from '../lib/db.js'
import { type Answer, call, NoAnswer } from '../lib/http.js'
import { latencySummary, rssMiB, sleep } from '../lib/util.js'

export interface AbuseOptions {
  root: string
  /** Concurrent maximum-size pushes per burst (two bursts: many users, then one user). */
  pushes: number
  /** Peak RSS allowed for the daemon (MiB). */
  rssLimitMiB?: number
  /**
   * Slowest /healthz answer allowed (ms); only the full-size runner sets it (1 000): CI asserts no timings, and on a
   * shared, oversubscribed machine CPU starvation alone can exceed it.
   */
  healthzLimitMs?: number
  log?: (line: string) => void
}

export interface AbuseReport {
  hostileChecks: number
  pushBytes: number
  bursts: { label: string; statuses: Record<string, number>; acceptedRecords: number }[]
  rssMiB: { start: number; peak: number }
  healthz: ReturnType<typeof latencySummary>
  violations: string[]
}

/** Polls /healthz every 100 ms and posts each latency; stops on any message. */
const HEALTH_PROBE = `
const { parentPort, workerData } = require('node:worker_threads')
let stop = false
parentPort.once('message', () => { stop = true })
;(async () => {
  while (!stop) {
    const t0 = performance.now()
    try {
      const res = await fetch(workerData.url, { signal: AbortSignal.timeout(10000) })
      await res.text()
      parentPort.postMessage({ ms: performance.now() - t0, status: res.status })
    } catch (err) {
      parentPort.postMessage({ error: String(err) })
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  process.exit(0)
})()
`

const SECRET = 'abuse-scenario-secret-0123456789abcdefghijklmnop'
const CLIENT_CAP = 5

/** Random printable text that no compression can shrink (base64url of random bytes). */
export function incompressible(chars: number): string {
  return randomBytes(Math.ceil((chars * 3) / 4))
    .toString('base64url')
    .slice(0, chars)
}

function token(sub: string): Promise<string> {
  return new SignJWT({ sub })
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET))
}

export async function runAbuse(o: AbuseOptions): Promise<AbuseReport> {
  const log = o.log ?? (() => {})
  const rssLimit = o.rssLimitMiB ?? 768
  const violations: string[] = []
  const db = await createDb(o.root, 'rel_abuse')
  let daemon: Daemon | undefined
  try {
    const { NORTHWIND_SQL } = await import('@synchro/test-harness/northwind')
    await db.pool.query(NORTHWIND_SQL)
    const port = await freePort()
    daemon = await startSynchrod({
      db,
      port,
      env: { JWT_SECRET: SECRET, MAX_CLIENTS_PER_USER: String(CLIENT_CAP) },
    })
    const base = `http://127.0.0.1:${port}`
    const as = async (sub: string) => ({ authorization: `Bearer ${await token(sub)}` })
    let hostileChecks = 0
    const expect = (label: string, a: Answer, status: number, error?: string) => {
      hostileChecks++
      if (a.status !== status || (error !== undefined && a.body?.error !== error)) {
        violations.push(`${label}: ${a.status} ${a.text.slice(0, 150)} (want ${status}${error ? ` "${error}"` : ''})`)
      }
    }
    const reg = (sub: string, fields: Record<string, unknown>) =>
      as(sub).then((headers) =>
        call(base, 'POST', '/sync/register', {
          headers,
          body: { client_id: 'dev', platform: 't', app_version: '1', schema_version: 0, schema_hash: '', ...fields },
        }),
      )

    // Hostile identities and register fields (item 6).
    const user = randomUUID()
    const ok = await reg(user, {})
    expect('register (control)', ok, 200)
    const pair = { schema_version: ok.body.schema_version, schema_hash: ok.body.schema_hash }
    const auth = await as(user)
    for (const q of ['dev%00', 'dev-B%00', `${incompressible(3_000)}`, '%00%00', '']) {
      const a = await call(base, 'GET', `/sync/events?client_id=${q}`, { headers: auth })
      expect(`/sync/events?client_id=${q.slice(0, 20)}`, a, 400)
    }
    for (const [label, fields] of [
      ['client_id of 3 000 incompressible characters', { client_id: incompressible(3_000) }],
      ['client_id of 256 characters', { client_id: incompressible(256) }],
      ['platform of 256 characters', { platform: incompressible(256) }],
      ['app_version of 3 000 characters', { app_version: incompressible(3_000) }],
      ['client_name of 1 025 characters', { client_name: incompressible(1_025) }],
      ['client_name of 9 MiB', { client_name: incompressible(9 * 1024 * 1024) }],
      ['client_id with NUL', { client_id: 'a\u0000b' }],
    ] as const) {
      expect(`register with ${label}`, await reg(user, fields), 400, 'invalid request body')
    }
    expect(
      'register at the limits (255 / 1 024)',
      await reg(user, {
        client_id: incompressible(255),
        platform: incompressible(255),
        client_name: incompressible(1_024),
      }),
      200,
    )
    expect('JWT with a 3 000-character sub', await reg(incompressible(3_000), {}), 401, 'invalid token')
    expect('JWT with a 256-character sub', await reg(incompressible(256), {}), 401, 'invalid token')
    // Clients per user: the cap counts active clients; known clients always re-register.
    const capped = randomUUID()
    for (let i = 0; i < CLIENT_CAP; i++)
      expect(`client ${i + 1} of ${CLIENT_CAP}`, await reg(capped, { client_id: `c${i}` }), 200)
    expect(
      'one client over the cap',
      await reg(capped, { client_id: 'one-too-many' }),
      403,
      'too many clients for this user',
    )
    expect('a known client re-registers at the cap', await reg(capped, { client_id: 'c0' }), 200)
    log(`${hostileChecks} hostile identity checks`)

    // Concurrent maximum-size pushes (item 4), with RSS and /healthz sampled throughout.
    const pid = daemon.proc.pid as number
    const rssStart = rssMiB(pid) ?? 0
    let rssPeak = rssStart
    // /healthz is probed from a worker thread: this thread is busy sending the bursts, and its own pauses must not
    // count as the daemon's.
    const prober = new Worker(HEALTH_PROBE, { eval: true, workerData: { url: `${base}/healthz` } })
    const health: number[] = []
    prober.on('message', (m: { ms?: number; status?: number; error?: string }) => {
      if (m.error) violations.push(`/healthz: no answer under load (${m.error})`)
      else if (m.status !== 200) violations.push(`/healthz → ${m.status} under load`)
      else health.push(m.ms as number)
    })
    let sampling = true
    const sampler = (async () => {
      while (sampling) {
        rssPeak = Math.max(rssPeak, rssMiB(pid) ?? 0)
        await sleep(50)
      }
    })()
    const address = incompressible(9_300) // 1 000 × ~9.4 KB ≈ 9.5 MB per push, under the 10 MiB body limit
    const body = (ids: string[]) =>
      JSON.stringify({
        client_id: 'dev',
        ...pair,
        changes: ids.map((id) => ({ id, table_name: 'orders', operation: 'create', data: { ship_address: address } })),
      })
    const pushBytes = Buffer.byteLength(body(Array.from({ length: 1000 }, () => randomUUID())))
    const bursts: AbuseReport['bursts'] = []
    const acked: string[] = []
    for (const label of ['many users', 'one user'] as const) {
      const subs = Array.from({ length: o.pushes }, () => (label === 'one user' ? user : randomUUID()))
      for (const s of new Set(subs)) if (s !== user) await reg(s, {})
      const statuses: Record<string, number> = {}
      let acceptedRecords = 0
      // Built before the burst: serialising them meanwhile would stall this process (and the /healthz probe in it).
      const requests = await Promise.all(
        subs.map(async (s) => ({ headers: await as(s), raw: body(Array.from({ length: 1000 }, () => randomUUID())) })),
      )
      await Promise.all(
        requests.map(async ({ headers, raw }) => {
          let a: Answer
          try {
            a = await call(base, 'POST', '/sync/push', { headers, raw, timeoutMs: 120_000 })
          } catch (err) {
            violations.push(`${label} push: no answer (${err instanceof NoAnswer ? err.message : err})`)
            return
          }
          statuses[a.status] = (statuses[a.status] ?? 0) + 1
          if (a.status === 200) {
            for (const r of a.body.accepted) acked.push(r.id)
            acceptedRecords += a.body.accepted.length
            if (a.body.rejected.length > 0)
              violations.push(`${label}: push rejected ${JSON.stringify(a.body.rejected[0])}`)
          } else if (a.status === 429 || a.status === 503) {
            if (!a.headers.get('retry-after')) violations.push(`${label}: ${a.status} without Retry-After`)
          } else violations.push(`${label} push → ${a.status} ${a.text.slice(0, 120)}`)
        }),
      )
      bursts.push({ label, statuses, acceptedRecords })
      if (!statuses['200']) violations.push(`${label}: no push was served at all`)
      log(`${label}: ${JSON.stringify(statuses)}`)
    }
    sampling = false
    await sampler
    prober.postMessage('stop')
    await new Promise((r) => prober.once('exit', r))
    if (rssPeak >= rssLimit) violations.push(`daemon peak RSS ${rssPeak} MiB ≥ ${rssLimit} MiB`)
    const healthz = latencySummary(health)
    if (o.healthzLimitMs !== undefined && healthz.max >= o.healthzLimitMs) {
      violations.push(`/healthz took ${healthz.max} ms under load (≥ ${o.healthzLimitMs} ms)`)
    }
    // Nothing lost: every acknowledged record is stored.
    const stored = await db.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[])',
      [acked],
    )
    if (stored.rows[0]?.n !== acked.length)
      violations.push(`${acked.length - (stored.rows[0]?.n ?? 0)} acknowledged records missing`)
    return { hostileChecks, pushBytes, bursts, rssMiB: { start: rssStart, peak: rssPeak }, healthz, violations }
  } finally {
    if (daemon) await stopGracefully(daemon)
    await db.drop()
  }
}
