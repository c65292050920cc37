// 1. Crash: the daemon (sole process, so the WAL consumer leader) is SIGKILLed again and again while raw-HTTP
// clients and SynchroClients push and the app writes straight to PostgreSQL; it is restarted after each kill.
// Afterwards the changelog must match the audited row changes exactly, every acknowledged push must be in the
// tables, and every client's replica must equal what the server lets it read.
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL } from '../../../test-harness/src/northwind.js'
import { AUDIT_SQL, type ChangelogCheck, changelogViolations, checkChangelog } from '../lib/audit.js'
import { type Daemon, freePort, killHard, startSynchrod, stopGracefully } from '../lib/daemon.js'
import { createDb } from '../lib/db.js'
import { NoAnswer } from '../lib/http.js'
import { diffRows, type PushChange, RawClient, visibleRows } from '../lib/raw-client.js'
import { diffState, localState, SdkPool, serverState } from '../lib/sdk.js'
import { latencySummary, pick, poll, rng, sleep } from '../lib/util.js'

export interface CrashOptions {
  root: string
  kills: number
  pushers: number
  sdkClients: number
  seed: number
  log?: (line: string) => void
}

export interface CrashReport {
  kills: number
  durationMs: number
  restartMs: ReturnType<typeof latencySummary>
  pushes: {
    requests: number
    noAnswer: number
    acked: number
    ambiguous: number
    rejected: number
    statuses: Record<string, number>
  }
  appWrites: number
  sdkWrites: number
  changelog: ChangelogCheck
  /** Last local SDK writes the server does not have (known client bug, reported, not counted as a violation). */
  sdkLostWrites: string[]
  violations: string[]
}

type Status = 'acked' | 'ambiguous' | 'rejected'
interface Attempt {
  op: 'create' | 'update' | 'delete'
  value: number
  status: Status
}

/** A raw-HTTP pusher: owns its user's orders and keeps, per row, every attempt and how it ended. */
class Pusher {
  readonly client: RawClient
  readonly attempts = new Map<string, Attempt[]>()
  readonly live: string[] = []
  readonly stamps = new Map<string, string>()
  requests = 0
  noAnswer = 0
  private n = 0

  constructor(
    base: () => string,
    readonly user: string,
    readonly r: () => number,
    readonly tag: string,
  ) {
    this.client = new RawClient(base, user, `pusher-${tag}`, 15_000)
  }

  async step(): Promise<void> {
    if (!this.client.snapshotDone) {
      await this.client.bootstrap()
      return
    }
    const changes: PushChange[] = []
    const planned: { id: string; a: Attempt }[] = []
    const k = 1 + Math.floor(this.r() * 3)
    const touched = new Set<string>()
    for (let i = 0; i < k; i++) {
      const value = ++this.n * 1000 + Number(this.tag.replace(/\D/g, '') || 0)
      const x = this.r()
      if (this.live.length < 3 || x < 0.4) {
        const id = randomUUID()
        changes.push({
          id,
          table_name: 'orders',
          operation: 'create',
          data: { ship_address: `${this.tag}-${value}`, total_cents: value },
          client_updated_at: new Date().toISOString(),
        })
        planned.push({ id, a: { op: 'create', value, status: 'ambiguous' } })
        touched.add(id)
      } else {
        const id = pick(this.r, this.live)
        if (touched.has(id)) continue
        touched.add(id)
        const del = x > 0.85
        changes.push({
          id,
          table_name: 'orders',
          operation: del ? 'delete' : 'update',
          ...(del ? {} : { data: { ship_address: `${this.tag}-${value}`, total_cents: value } }),
          client_updated_at: new Date().toISOString(),
          base_updated_at: this.stamps.get(id) ?? null,
        })
        planned.push({ id, a: { op: del ? 'delete' : 'update', value, status: 'ambiguous' } })
      }
    }
    for (const p of planned) {
      const list = this.attempts.get(p.id)
      if (list) list.push(p.a)
      else this.attempts.set(p.id, [p.a])
    }
    this.requests++
    let answer: Awaited<ReturnType<RawClient['push']>> | undefined
    let refused = false
    try {
      answer = await this.client.push(changes)
    } catch (err) {
      if (!(err instanceof NoAnswer)) throw err
      // Connection refused: the request never reached a server, so it certainly was not applied.
      refused = err.code === 'ECONNREFUSED'
      this.noAnswer++
    }
    const results = new Map<string, { status: string; server_updated_at?: string }>()
    if (answer?.status === 200) {
      for (const r of [...answer.body.accepted, ...answer.body.rejected]) results.set(r.id, r)
    }
    for (const p of planned) {
      const r = results.get(p.id)
      if (refused) p.a.status = 'rejected'
      else if (answer?.status !== 200) p.a.status = answer && answer.status < 500 ? 'rejected' : 'ambiguous'
      else
        p.a.status = r?.status === 'applied' ? 'acked' : r?.status === 'rejected_retryable' ? 'ambiguous' : 'rejected'
      if (p.a.status === 'acked' && r?.server_updated_at) this.stamps.set(p.id, r.server_updated_at)
      // Rows whose fate is unknown are left alone; a create that was answered lives on, a delete ends the row.
      if (p.a.op === 'create' && p.a.status === 'acked') this.live.push(p.id)
      if ((p.a.op === 'delete' && !refused) || (p.a.op === 'update' && p.a.status === 'rejected' && !refused)) {
        const i = this.live.indexOf(p.id)
        if (i >= 0) this.live.splice(i, 1)
      }
    }
    if (refused) await sleep(50)
    else if (this.r() < 0.3) await this.client.pullOnce().catch(() => undefined)
  }

  /** Every acknowledged write present; nothing present that was never attempted. */
  async verify(pool: pg.Pool): Promise<string[]> {
    const v: string[] = []
    const { rows } = await pool.query<{ id: string; total_cents: string; deleted: boolean; user_id: string }>(
      'SELECT id::text, total_cents::text, deleted_at IS NOT NULL AS deleted, user_id::text FROM orders WHERE id = ANY($1::uuid[])',
      [[...this.attempts.keys()]],
    )
    const byId = new Map(rows.map((r) => [r.id, r]))
    for (const [id, list] of this.attempts) {
      const row = byId.get(id)
      const lastAcked = list.map((a) => a.status).lastIndexOf('acked')
      const create = list[0]
      if (!row) {
        if (create?.status === 'acked') v.push(`${this.tag}: acknowledged create of ${id} missing`)
        continue
      }
      if (row.user_id !== this.user) v.push(`${this.tag}: ${id} owned by ${row.user_id}`)
      if (row.deleted) {
        if (!list.some((a) => a.op === 'delete' && a.status !== 'rejected'))
          v.push(`${this.tag}: ${id} deleted without a delete`)
        continue
      }
      if (list.some((a) => a.op === 'delete' && a.status === 'acked')) {
        v.push(`${this.tag}: acknowledged delete of ${id} not applied`)
        continue
      }
      const allowed = new Set<number>()
      const from = Math.max(lastAcked, 0)
      if (lastAcked >= 0) allowed.add(list[lastAcked]!.value)
      for (let i = from; i < list.length; i++) if (list[i]!.status === 'ambiguous') allowed.add(list[i]!.value)
      if (lastAcked < 0 && create) allowed.add(create.value)
      if (!allowed.has(Number(row.total_cents)))
        v.push(`${this.tag}: ${id} total_cents ${row.total_cents}, expected one of ${[...allowed].join(',')}`)
    }
    return v
  }

  counts() {
    const c = { acked: 0, ambiguous: 0, rejected: 0 }
    for (const list of this.attempts.values()) for (const a of list) c[a.status]++
    return c
  }
}

export async function runCrash(o: CrashOptions): Promise<CrashReport> {
  const log = o.log ?? (() => {})
  const r = rng(o.seed)
  const started = Date.now()
  const db = await createDb(o.root, 'rel_crash')
  const violations: string[] = []
  const sdk = new SdkPool()
  const appPool = new pg.Pool({ connectionString: db.url, max: 2 })
  appPool.on('error', () => {})
  let daemon: Daemon | undefined
  try {
    await db.pool.query(NORTHWIND_SQL)
    await db.pool.query(AUDIT_SQL)
    const port = await freePort()
    const base = `http://127.0.0.1:${port}`
    daemon = await startSynchrod({ db, port })
    // Seeded after the slot exists, so the seed rows go through the WAL like every other write.
    await db.pool.query(NORTHWIND_SEED_SQL)

    const pushers = Array.from(
      { length: o.pushers },
      (_, i) => new Pusher(() => base, randomUUID(), rng(o.seed + i + 1), `p${i}`),
    )
    const sdkUsers = Array.from({ length: o.sdkClients }, () => randomUUID())
    const sdkClients = sdkUsers.map((u) => sdk.create(base, u))
    for (const c of sdkClients) await c.start()
    /** What each SDK client last wrote per row (it is the only writer of its user's rows). */
    const sdkModel = sdkClients.map(() => new Map<string, { value: number; deleted: boolean }>())
    const appUser = randomUUID()
    const appRows: string[] = []
    const productIds = (await db.pool.query<{ id: string }>('SELECT id::text FROM products ORDER BY id')).rows.map(
      (x) => x.id,
    )
    let appWrites = 0
    let sdkWrites = 0
    let stop = false

    const pusherLoops = pushers.map(async (p) => {
      while (!stop) {
        await p.step().catch((err) => violations.push(`pusher ${p.tag} threw: ${err}`))
        await sleep(5)
      }
    })
    const appLoop = (async () => {
      let n = 0
      while (!stop) {
        n++
        const x = r()
        if (appRows.length < 3 || x < 0.3) {
          const id = randomUUID()
          await appPool.query('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES ($1, $2, $3, $4)', [
            id,
            appUser,
            `app-${n}`,
            n,
          ])
          appRows.push(id)
        } else if (x < 0.6) {
          await appPool.query('UPDATE orders SET total_cents = $2, updated_at = clock_timestamp() WHERE id = $1', [
            pick(r, appRows),
            n,
          ])
        } else if (x < 0.7) {
          const id = appRows.splice(Math.floor(r() * appRows.length), 1)[0]!
          await appPool.query(
            'UPDATE orders SET deleted_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1',
            [id],
          )
        } else {
          // Multi-row transaction: two products and an order change commit together.
          const c = await appPool.connect()
          try {
            await c.query('BEGIN')
            await c.query('UPDATE products SET units_in_stock = $2, updated_at = clock_timestamp() WHERE id = $1', [
              pick(r, productIds),
              n,
            ])
            await c.query('UPDATE products SET units_in_stock = $2, updated_at = clock_timestamp() WHERE id = $1', [
              pick(r, productIds),
              n + 1,
            ])
            await c.query('UPDATE orders SET ship_address = $2, updated_at = clock_timestamp() WHERE id = $1', [
              pick(r, appRows),
              `app-tx-${n}`,
            ])
            await c.query('COMMIT')
          } finally {
            c.release()
          }
        }
        appWrites++
        await sleep(10)
      }
    })()
    const sdkLoops = sdkClients.map(async (c, i) => {
      const model = sdkModel[i]!
      let n = 0
      while (!stop) {
        n++
        const value = n * 1000 + 900 + i
        const live = [...model].filter(([, m]) => !m.deleted).map(([id]) => id)
        const x = r()
        if (live.length < 3 || x < 0.4) {
          const id = randomUUID()
          await c.execute('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, ?, ?)', [
            id,
            sdkUsers[i]!,
            `sdk-${value}`,
            value,
          ])
          model.set(id, { value, deleted: false })
        } else if (x < 0.85) {
          const id = pick(r, live)
          await c.execute('UPDATE orders SET ship_address = ?, total_cents = ? WHERE id = ?', [
            `sdk-${value}`,
            value,
            id,
          ])
          model.set(id, { value, deleted: false })
        } else {
          const id = pick(r, live)
          await c.execute('DELETE FROM orders WHERE id = ?', [id])
          model.set(id, { value: model.get(id)!.value, deleted: true })
        }
        sdkWrites++
        if (n % 3 === 0) await c.syncNow().catch(() => undefined)
        await sleep(20)
      }
    })

    const restartMs: number[] = []
    const seqNow = async () =>
      Number(
        (await db.pool.query<{ m: string }>('SELECT coalesce(max(seq), 0)::text AS m FROM sync_changelog')).rows[0]!.m,
      )
    for (let k = 0; k < o.kills; k++) {
      // Let real work happen between kills: new changelog rows and acknowledged pushes.
      const seq0 = await seqNow()
      const acked0 = pushers.reduce((s, p) => s + p.counts().acked, 0)
      await poll(
        async () => (await seqNow()) > seq0 && pushers.reduce((s, p) => s + p.counts().acked, 0) > acked0,
        60_000,
        `progress before kill ${k + 1}`,
      )
      await sleep(Math.floor(r() * 300))
      await killHard(daemon)
      const t0 = performance.now()
      daemon = await startSynchrod({ db, port })
      restartMs.push(performance.now() - t0)
      log(`kill ${k + 1}/${o.kills}: restarted in ${Math.round(restartMs.at(-1)!)} ms`)
    }

    stop = true
    await Promise.all([...pusherLoops, appLoop, ...sdkLoops])

    // Drain: SDK queues empty, then a marker row proves the consumer has captured everything committed before it.
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
    await db.pool.query('INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, $3)', [
      marker,
      appUser,
      'marker',
    ])
    await poll(
      async () => (await db.pool.query('SELECT 1 FROM sync_changelog WHERE record_id = $1', [marker])).rowCount,
      60_000,
      'marker captured',
    )
    for (const c of sdkClients) await c.syncNow()
    for (const p of pushers) {
      if (!p.client.snapshotDone) await p.client.bootstrap()
      if (!(await p.client.pullAll())) violations.push(`${p.tag}: final pull failed`)
    }

    const sdkLostWrites: string[] = []
    const changelog = await checkChangelog(db.pool)
    violations.push(...changelogViolations(changelog))
    for (const p of pushers) {
      violations.push(...(await p.verify(db.pool)))
      violations.push(...diffRows(`${p.tag} replica`, p.client.rows, await visibleRows(db.pool, p.user)))
      for (const [status, n] of p.client.statuses)
        if (status >= 500 && status !== 503) violations.push(`${p.tag}: ${n}× HTTP ${status}`)
    }
    for (const [i, c] of sdkClients.entries()) {
      const server = await serverState(db.pool, sdkUsers[i]!)
      violations.push(...diffState(`sdk${i}`, await localState(c), server))
      for (const [id, m] of sdkModel[i]!) {
        const s = server.orders.get(id)
        // Known client bugs (bugs.pg.test.ts): a write made after a push whose answer was lost can be dropped.
        if (m.deleted && s) sdkLostWrites.push(`sdk${i}: local delete of ${id} never reached the server`)
        if (!m.deleted && s?.total_cents !== m.value)
          sdkLostWrites.push(`sdk${i}: ${id} last local write ${m.value}, server kept ${s?.total_cents}`)
      }
    }
    const statuses: Record<string, number> = {}
    if (sdkLostWrites.length) log(`SDK writes lost after unanswered pushes: ${sdkLostWrites.join('; ')}`)
    for (const p of pushers) for (const [s, n] of p.client.statuses) statuses[s] = (statuses[s] ?? 0) + n
    const counts = pushers.reduce(
      (s, p) => {
        const c = p.counts()
        return { acked: s.acked + c.acked, ambiguous: s.ambiguous + c.ambiguous, rejected: s.rejected + c.rejected }
      },
      { acked: 0, ambiguous: 0, rejected: 0 },
    )
    return {
      kills: o.kills,
      durationMs: Date.now() - started,
      restartMs: latencySummary(restartMs),
      pushes: {
        requests: pushers.reduce((s, p) => s + p.requests, 0),
        noAnswer: pushers.reduce((s, p) => s + p.noAnswer, 0),
        ...counts,
        statuses,
      },
      appWrites,
      sdkWrites,
      changelog,
      sdkLostWrites,
      violations,
    }
  } finally {
    if (daemon) await stopGracefully(daemon)
    await sdk.close()
    await appPool.end().catch(() => {})
    await db.drop()
  }
}
