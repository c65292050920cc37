// Scale-out: several synchrod instances on ONE database (the WAL capture leader elected among them), SDK clients
// spread across the instances, raw pushers on every instance and an app writing straight to PostgreSQL.
// - Cross-instance delivery: a write through instance A reaches the watchers on every instance. The watchers never
//   sync on a timer (syncInterval 0), so each arrival proves that instance's live pokes (NOTIFY → LISTEN → SSE).
// - Leader kill: the capture leader is SIGKILLed under load; another instance must take over capture (reported in
//   ms, a violation above `takeoverLimitMs` when set), and pokes must keep arriving on every surviving instance.
// - Afterwards the changelog must equal the audited row changes (nothing lost or duplicated), every acknowledged
//   push must be in the tables, and every client's replica must equal the server.
import { randomUUID } from 'node:crypto'
import type { SynchroClient } from '@synchro/client'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL } from '@synchro/test-harness/northwind'
import pg from 'pg'
import { AUDIT_SQL, type ChangelogCheck, changelogViolations, checkChangelog } from '../lib/audit.js'
import { type Daemon, freePort, killHard, startSynchrod, stopGracefully } from '../lib/daemon.js'
import { createDb } from '../lib/db.js'
import { Pusher } from '../lib/pusher.js'
import { diffRows, visibleRows } from '../lib/raw-client.js'
import { diffState, localState, SdkPool, serverState } from '../lib/sdk.js'
import { latencySummary, poll, rng, sleep } from '../lib/util.js'

export interface ScaleOutOptions {
  root: string
  /** synchrod instances on the one database (≥ 2). */
  instances: number
  /** Cross-instance delivery probes before and after each kill. */
  probes: number
  /** Capture-leader kills. */
  kills: number
  seed: number
  /** A takeover slower than this is a violation (unset: only reported). */
  takeoverLimitMs?: number
  log?: (line: string) => void
}

export interface ScaleOutReport {
  instances: number
  kills: number
  durationMs: number
  /** Write through instance 0 (SDK push) → visible in the watcher on the last instance. */
  crossInstanceMs: ReturnType<typeof latencySummary>
  /** Write straight into PostgreSQL → visible in the watcher on every instance (slowest of them). */
  directAllInstancesMs: ReturnType<typeof latencySummary>
  /** SIGKILL of the capture leader → another instance reports itself leader with a running stream. */
  takeoverMs: ReturnType<typeof latencySummary>
  pushes: { requests: number; acked: number; ambiguous: number; rejected: number }
  appWrites: number
  changelog: ChangelogCheck
  violations: string[]
}

interface Health {
  consumer?: { leader?: boolean; running?: boolean }
}

export async function runScaleOut(o: ScaleOutOptions): Promise<ScaleOutReport> {
  const log = o.log ?? (() => {})
  const r = rng(o.seed)
  const started = Date.now()
  const db = await createDb(o.root, 'rel_scale')
  const violations: string[] = []
  const sdk = new SdkPool()
  const appPool = new pg.Pool({ connectionString: db.url, max: 2 })
  appPool.on('error', () => {})
  const daemons: (Daemon | undefined)[] = []
  try {
    await db.pool.query(NORTHWIND_SQL)
    await db.pool.query(AUDIT_SQL)
    const ports = await Promise.all(Array.from({ length: o.instances }, () => freePort()))
    const bases = ports.map((p) => `http://127.0.0.1:${p}`)
    for (const port of ports) daemons.push(await startSynchrod({ db, port }))
    await db.pool.query(NORTHWIND_SEED_SQL)

    // One watcher user with an SDK client on every instance (pokes only: no sync timer), and a writer on instance 0.
    const watchUser = randomUUID()
    const watchers = bases.map((b) => sdk.create(b, watchUser))
    const writer = sdk.create(bases[0] as string, watchUser)
    for (const c of [...watchers, writer]) await c.start()
    const pushers = bases.map(
      (_, i) => new Pusher(() => bases[i] as string, randomUUID(), rng(o.seed + i + 1), `p${i}`),
    )

    let stop = false
    const pusherLoops = pushers.map(async (p) => {
      while (!stop) {
        // An instance being killed answers nothing for a moment: its pushes are ambiguous, never lost.
        await p.step().catch(() => undefined)
        await sleep(20)
      }
    })
    const appUser = randomUUID()
    let appWrites = 0
    const appLoop = (async () => {
      while (!stop) {
        await appPool
          .query('INSERT INTO orders (user_id, ship_address, total_cents) VALUES ($1, $2, $3)', [
            appUser,
            `app-${appWrites}`,
            appWrites,
          ])
          .then(() => appWrites++)
          .catch(() => undefined)
        await sleep(15)
      }
    })()

    /** Resolves when every client in `on` has the order tagged `tag`; returns the ms until the slowest had it. */
    const arrival = async (on: SynchroClient[], tag: string, t0: number, what: string): Promise<number> => {
      const times = await Promise.all(
        on.map((c, i) =>
          poll(
            async () => {
              const rows = await c.query('SELECT 1 FROM orders WHERE ship_address = ?', [tag])
              return rows.length > 0 ? performance.now() : undefined
            },
            30_000,
            `${what}: watcher ${i} got ${tag}`,
            5,
          ).catch((err: Error) => {
            violations.push(err.message)
            return Number.NaN
          }),
        ),
      )
      return Math.max(...times) - t0
    }
    const crossMs: number[] = []
    const directMs: number[] = []
    const probe = async (alive: SynchroClient[], what: string) => {
      for (let i = 0; i < o.probes; i++) {
        const tag = `probe-${randomUUID()}`
        const t0 = performance.now()
        await writer.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [
          randomUUID(),
          watchUser,
          tag,
        ])
        const last = alive.at(-1) as SynchroClient
        crossMs.push(await arrival([last], tag, t0, `${what} via instance 0`))
        const dtag = `direct-${randomUUID()}`
        await db.pool.query('INSERT INTO orders (user_id, ship_address) VALUES ($1, $2)', [watchUser, dtag])
        const t1 = performance.now()
        directMs.push(await arrival(alive, dtag, t1, `${what} direct`))
        await sleep(Math.floor(r() * 100))
      }
    }

    await poll(() => pushers.every((p) => p.client.snapshotDone), 60_000, 'pushers bootstrapped')
    await probe(watchers, 'before kills')

    const health = async (base: string): Promise<Health | undefined> => {
      try {
        const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2_000) })
        return (await res.json()) as Health
      } catch {
        return undefined
      }
    }
    const leaderIndex = async (except?: number) =>
      poll(
        async () => {
          for (const [i, b] of bases.entries()) {
            if (i === except || !daemons[i]) continue
            const h = await health(b)
            if (h?.consumer?.leader && h.consumer.running) return i + 1
          }
          return undefined
        },
        60_000,
        'a capture leader',
        20,
      ).then((x) => x - 1)

    const takeoverMs: number[] = []
    for (let k = 0; k < o.kills; k++) {
      const leader = await leaderIndex()
      await killHard(daemons[leader] as Daemon)
      daemons[leader] = undefined
      const t0 = performance.now()
      const next = await leaderIndex(leader)
      takeoverMs.push(performance.now() - t0)
      log(
        `kill ${k + 1}/${o.kills}: instance ${leader} killed, instance ${next} took over in ${Math.round(takeoverMs.at(-1) as number)} ms`,
      )
      if (o.takeoverLimitMs !== undefined && (takeoverMs.at(-1) as number) > o.takeoverLimitMs)
        violations.push(`takeover after kill ${k + 1} took ${Math.round(takeoverMs.at(-1) as number)} ms`)
      // Pokes continue on every surviving instance (the writer's instance may be the dead one: it then pushes later).
      const alive = watchers.filter((_, i) => daemons[i] !== undefined)
      if (daemons[0]) await probe(alive, `after kill ${k + 1}`)
      else {
        const dtag = `direct-${randomUUID()}`
        await db.pool.query('INSERT INTO orders (user_id, ship_address) VALUES ($1, $2)', [watchUser, dtag])
        directMs.push(await arrival(alive, dtag, performance.now(), `after kill ${k + 1} direct`))
      }
      daemons[leader] = await startSynchrod({ db, port: ports[leader] as number })
    }
    // Every instance (restarted ones too) delivers again.
    await probe(watchers, 'after restarts')

    stop = true
    await Promise.all([...pusherLoops, appLoop])
    await poll(
      async () => {
        await writer.syncNow().catch(() => undefined)
        return (await writer.pendingChangeCount()) === 0
      },
      60_000,
      'writer queue drained',
    )
    const marker = randomUUID()
    await db.pool.query('INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, $3)', [marker, appUser, 'm'])
    await poll(
      async () => (await db.pool.query('SELECT 1 FROM sync_changelog WHERE record_id = $1', [marker])).rowCount,
      60_000,
      'marker captured',
    )
    for (const c of [...watchers, writer]) await c.syncNow()
    for (const p of pushers) {
      if (!p.client.snapshotDone) await p.client.bootstrap()
      if (!(await p.client.pullAll())) violations.push(`${p.tag}: final pull failed`)
    }

    const changelog = await checkChangelog(db.pool)
    violations.push(...changelogViolations(changelog))
    for (const p of pushers) {
      violations.push(...(await p.verify(db.pool)))
      violations.push(...diffRows(`${p.tag} replica`, p.client.rows, await visibleRows(db.pool, p.user)))
    }
    const server = await serverState(db.pool, watchUser)
    for (const [i, c] of [...watchers, writer].entries()) {
      violations.push(...diffState(`sdk${i}`, await localState(c), server))
    }
    const counts = pushers.reduce(
      (s, p) => {
        const c = p.counts()
        return { acked: s.acked + c.acked, ambiguous: s.ambiguous + c.ambiguous, rejected: s.rejected + c.rejected }
      },
      { acked: 0, ambiguous: 0, rejected: 0 },
    )
    return {
      instances: o.instances,
      kills: o.kills,
      durationMs: Date.now() - started,
      crossInstanceMs: latencySummary(crossMs.filter(Number.isFinite)),
      directAllInstancesMs: latencySummary(directMs.filter(Number.isFinite)),
      takeoverMs: latencySummary(takeoverMs),
      pushes: { requests: pushers.reduce((s, p) => s + p.requests, 0), ...counts },
      appWrites,
      changelog,
      violations,
    }
  } finally {
    for (const d of daemons) if (d) await stopGracefully(d)
    await sdk.close()
    await appPool.end().catch(() => {})
    await db.drop()
  }
}
