// 3. Convergence: N SynchroClients (real SQLite files) against a real server over a socket with the WAL consumer
// running, doing random offline creates/updates/deletes and conflicting edits while their network comes and goes.
// Then everyone goes online and syncs until quiet: every client must hold exactly the rows its user may read, with
// the server's values, and no write the server acknowledged may be lost (the last accepted write per row wins).
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
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
import fc from 'fast-check'
import type pg from 'pg'
import { AUDIT_SQL, changelogViolations, checkChangelog } from '../lib/audit.js'
import { createDb } from '../lib/db.js'
import { diffState, localState, type Net, SdkPool, serverState, switchableNet } from '../lib/sdk.js'

export interface ConvergenceOptions {
  root: string
  clients: number
  users: number
  /** Rounds per fast-check run. */
  rounds: number
  runs: number
  seed: number
  log?: (line: string) => void
}

export interface ConvergenceReport {
  seed: number
  runs: number
  rounds: number
  ops: Record<string, number>
  conflicts: number
  durationMs: number
  violations: string[]
}

type Action =
  | { kind: 'create'; client: number }
  | { kind: 'update'; client: number; row: number }
  | { kind: 'delete'; client: number; row: number }
  | { kind: 'toggle'; client: number }
  | { kind: 'sync'; client: number }
  | { kind: 'server'; row: number }

function actionArb(clients: number): fc.Arbitrary<Action> {
  const client = fc.nat({ max: clients - 1 })
  const row = fc.nat({ max: 1_000_000 })
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('create' as const), client }) },
    { weight: 5, arbitrary: fc.record({ kind: fc.constant('update' as const), client, row }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), client, row }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('toggle' as const), client }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('sync' as const), client }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('server' as const), row }) },
  )
}

export async function runConvergence(o: ConvergenceOptions): Promise<ConvergenceReport> {
  const started = Date.now()
  const ops: Record<string, number> = {}
  let conflicts = 0
  const violations: string[] = []
  let runIndex = 0
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(actionArb(o.clients), { minLength: o.rounds, maxLength: o.rounds }),
        async (actions) => {
          const v = await oneRun(o, actions, runIndex++, ops, (n) => {
            conflicts += n
          })
          if (v.length > 0) {
            violations.push(...v)
            throw new Error(v.slice(0, 10).join('\n'))
          }
        },
      ),
      { seed: o.seed, numRuns: o.runs, endOnFailure: true },
    )
  } catch (err) {
    // fast-check's message carries the seed and the counterexample path for replay.
    const msg = String((err as Error).message)
    const cause = (err as { cause?: unknown }).cause
    violations.push(
      `fast-check failed (seed ${o.seed}, replay with RELIABILITY_SEED): ${cause ? String((cause as Error).stack ?? cause).slice(0, 1500) : msg.slice(-1500)}`,
    )
  }
  return { seed: o.seed, runs: o.runs, rounds: o.rounds, ops, conflicts, durationMs: Date.now() - started, violations }
}

async function oneRun(
  o: ConvergenceOptions,
  actions: Action[],
  run: number,
  ops: Record<string, number>,
  onConflicts: (n: number) => void,
): Promise<string[]> {
  const db = await createDb(o.root, 'rel_conv')
  const sdk = new SdkPool()
  const violations: string[] = []
  const quiet = { debug() {}, info() {}, warn() {}, error() {} }
  let server: http.Server | undefined
  let consumer: ReturnType<typeof startWalConsumer> | undefined
  let engine: Awaited<ReturnType<typeof createEngine>> | undefined
  try {
    await db.pool.query(NORTHWIND_SQL)
    await db.pool.query(AUDIT_SQL)
    const registry = new Registry()
    for (const t of NORTHWIND_TABLES) registry.register(t)
    engine = await createEngine({ pool: db.pool, registry, logger: quiet })
    const slot = `rel_conv_${db.name}`.slice(0, 63)
    await ensurePublication(db.pool, registry, 'synchro_pub')
    await ensureSlot(db.pool, slot)
    consumer = startWalConsumer({ pool: db.pool, registry, replicationUrl: db.url, slotName: slot, logger: quiet })
    await db.pool.query(NORTHWIND_SEED_SQL)
    server = http.createServer(toNodeListener(createSyncHandler(engine, { authenticate: headerAuth() })))
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const walCaughtUp = async () => {
      const { rows } = await db.pool.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')
      await consumer!.waitForLsn(rows[0]!.l, 30_000)
    }

    const users = Array.from({ length: o.users }, () => randomUUID())
    const nets: Net[] = []
    const clients = Array.from({ length: o.clients }, (_, i) => {
      const net = switchableNet()
      nets.push(net)
      // Automatic pushes (debounce, live pokes) would make a run depend on timing: the model drives every sync.
      return sdk.create(url, users[i % o.users]!, {
        fetch: net.fetch,
        pushDebounce: 3600,
        maxRetryAttempts: 0,
        live: false,
      })
    })
    let conflicts = 0
    for (const c of clients) c.onConflict(() => conflicts++)
    for (const c of clients) {
      // start() returns once the local database is ready; the first sync (schema, tables) is awaited here.
      await c.start()
      await c.syncNow().catch(() => undefined)
    }

    let value = 0
    for (const a of actions) {
      ops[a.kind] = (ops[a.kind] ?? 0) + 1
      if (a.kind === 'server') {
        // The app edits a row straight in PostgreSQL (a conflicting writer the clients never see coming).
        const { rows } = await db.pool.query<{ id: string }>(
          'SELECT id::text FROM orders WHERE deleted_at IS NULL ORDER BY id',
        )
        if (rows.length > 0) {
          await db.pool.query('UPDATE orders SET total_cents = $2, updated_at = clock_timestamp() WHERE id = $1', [
            rows[a.row % rows.length]!.id,
            ++value,
          ])
        }
        continue
      }
      const c = clients[a.client]!
      const user = users[a.client % o.users]!
      if (a.kind === 'toggle') nets[a.client]!.online = !nets[a.client]!.online
      else if (a.kind === 'sync') {
        await c.syncNow().catch(() => undefined)
      } else if (a.kind === 'create') {
        value++
        await c.execute('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, ?, ?)', [
          randomUUID(),
          user,
          `c${a.client}-${value}`,
          value,
        ])
      } else {
        const rows = await c.query<{ id: string }>('SELECT id FROM orders WHERE deleted_at IS NULL ORDER BY id')
        if (rows.length === 0) continue
        const id = rows[a.row % rows.length]!.id
        value++
        if (a.kind === 'update')
          await c.execute('UPDATE orders SET ship_address = ?, total_cents = ? WHERE id = ?', [
            `c${a.client}-${value}`,
            value,
            id,
          ])
        else await c.execute('DELETE FROM orders WHERE id = ?', [id])
      }
    }

    // Everyone online; sync until quiet (queues empty, nothing new arriving).
    for (const n of nets) n.online = true
    for (let round = 0; round < 5; round++) {
      for (const c of clients) await c.syncNow().catch(() => undefined)
      await walCaughtUp()
    }
    for (const c of clients) await c.syncNow()
    for (const [i, c] of clients.entries()) {
      const pending = await c.pendingChangeCount()
      if (pending !== 0) violations.push(`run ${run} client ${i}: ${pending} changes still queued`)
      const user = users[i % o.users]!
      violations.push(...diffState(`run ${run} client ${i}`, await localState(c), await serverState(db.pool, user)))
    }
    violations.push(...(await acceptedWritesWin(db.pool)))
    violations.push(...changelogViolations(await checkChangelog(db.pool)).map((v) => `run ${run}: ${v}`))
    onConflicts(conflicts)
    return violations
  } finally {
    await sdk.close()
    if (server) {
      server.closeAllConnections()
      await new Promise<void>((r) => server!.close(() => r()))
    }
    await consumer?.stop().catch(() => {})
    await engine?.close().catch(() => {})
    await db.drop()
  }
}

/**
 * LWW model on the server side: the audit holds every accepted write in commit order per row. The row's final
 * values must be those of its last accepted write, and once a delete was accepted the row stays deleted (no create
 * reuses an id here, and updates of a deleted row are conflicts).
 */
async function acceptedWritesWin(pool: pg.Pool): Promise<string[]> {
  const { rows } = await pool.query<{ id: string; deleted: boolean; ever_deleted: boolean }>(
    `SELECT o.id::text, o.deleted_at IS NOT NULL AS deleted,
            EXISTS (SELECT 1 FROM rel_audit a WHERE a.tbl = 'orders' AND a.record_id = o.id::text AND a.deleted) AS ever_deleted
     FROM orders o`,
  )
  return rows.filter((r) => r.ever_deleted && !r.deleted).map((r) => `accepted delete of ${r.id} undone`)
}
