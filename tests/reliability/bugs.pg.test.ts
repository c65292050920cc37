// Deterministic reproductions of bugs the reliability suite found in code owned by others. Each test states the
// correct behaviour and fails until the bug is fixed (see docs/reliability.md, "Bugs found").
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FetchLike } from '@synchro/client'
import { createEngine, createSyncHandler, headerAuth, Registry } from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { rootUrl } from '@synchro/test-harness/pg'
import { startDaemon } from '@synchro/test-harness/synchrod'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDb, type RelDb, slotFor } from './lib/db.js'
import { call } from './lib/http.js'
import { SdkPool } from './lib/sdk.js'
import { poll } from './lib/util.js'

const quiet = { debug() {}, info() {}, warn() {}, error() {} }
let db: RelDb
let server: http.Server
let base: string
let engine: Awaited<ReturnType<typeof createEngine>>
const sdk = new SdkPool()

beforeAll(async () => {
  db = await createDb(rootUrl(), 'rel_bugs')
  await db.pool.query(NORTHWIND_SQL)
  await db.pool.query(NORTHWIND_SEED_SQL)
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  engine = await createEngine({ pool: db.pool, registry, logger: quiet })
  server = http.createServer(toNodeListener(createSyncHandler(engine, { authenticate: headerAuth(), logger: quiet })))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await sdk.close()
  server.closeAllConnections()
  await new Promise<void>((r) => server.close(() => r()))
  await engine.close()
  await db.drop()
})

/** A fetch whose next push reaches the server (and is applied) but whose answer is lost, like a dropped connection. */
function losingFetch(): { fetch: FetchLike; loseNextPush: () => void; lost: () => number } {
  let lose = false
  let lost = 0
  return {
    loseNextPush: () => {
      lose = true
    },
    lost: () => lost,
    fetch: async (input, init) => {
      const res = await fetch(input, init)
      if (lose && String(input).endsWith('/sync/push')) {
        lose = false
        lost++
        await res.text()
        throw new TypeError('fetch failed (connection reset after the server answered)')
      }
      return res
    },
  }
}

describe('client SDK: a create whose push answer was lost', () => {
  it('a local delete made afterwards still reaches the server', async () => {
    const user = randomUUID()
    const net = losingFetch()
    const c = sdk.create(base, user, { fetch: net.fetch, pushDebounce: 3600, live: false })
    await c.start()
    await c.syncNow()
    const id = randomUUID()
    await c.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [id, user, 'x'])
    net.loseNextPush()
    await expect(c.syncNow()).rejects.toThrow()
    expect(net.lost()).toBe(1)
    // The server has the row; the client could not know.
    expect((await db.pool.query('SELECT 1 FROM orders WHERE id = $1 AND deleted_at IS NULL', [id])).rowCount).toBe(1)
    await c.execute('DELETE FROM orders WHERE id = ?', [id])
    await c.syncNow()
    const { rows } = await db.pool.query('SELECT deleted_at IS NOT NULL AS deleted FROM orders WHERE id = $1', [id])
    // BUG: the CDC trigger drops "create + delete" from the queue as if the create never reached the server.
    expect(rows[0]?.deleted, 'the delete never reached the server').toBe(true)
  })

  it('a local update made afterwards is not overwritten by the server copy of the create', async () => {
    const user = randomUUID()
    const net = losingFetch()
    const c = sdk.create(base, user, { fetch: net.fetch, pushDebounce: 3600, live: false })
    await c.start()
    await c.syncNow()
    const id = randomUUID()
    await c.execute('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, ?, ?)', [
      id,
      user,
      'v1',
      1,
    ])
    net.loseNextPush()
    await expect(c.syncNow()).rejects.toThrow()
    await c.execute('UPDATE orders SET ship_address = ?, total_cents = ? WHERE id = ?', ['v2', 2, id])
    await c.syncNow()
    const server = await db.pool.query('SELECT ship_address FROM orders WHERE id = $1', [id])
    const local = await c.queryOne<{ ship_address: string }>('SELECT ship_address FROM orders WHERE id = ?', [id])
    // BUG: the queued entry is still a 'create'; the server answers record_exists with its copy (v1), which the
    // client applies over the newer local write: v2 is lost on both sides.
    expect({ server: server.rows[0]?.ship_address, local: local?.ship_address }).toEqual({ server: 'v2', local: 'v2' })
  })
})

describe('server: hostile input', () => {
  it('POST /sync/register with a NUL character in client_id or client_name is a 400, not a 500', async () => {
    for (const body of [
      { client_id: 'a\u0000b', platform: 't', app_version: '1', schema_version: 0, schema_hash: '' },
      { client_id: 'ok', client_name: '\u0000', platform: 't', app_version: '1', schema_version: 0, schema_hash: '' },
      { client_id: 'ok2', platform: '\u0000', app_version: '1', schema_version: 0, schema_hash: '' },
    ]) {
      const a = await call(base, 'POST', '/sync/register', { user: randomUUID(), body })
      expect(a.status, JSON.stringify(body)).toBe(400)
    }
  })
})

describe('synchrod --demo', () => {
  it('restarting while the app writes does not deadlock (the app transaction commits and the daemon starts)', {
    timeout: 90_000,
  }, async () => {
    const d = await createDb(rootUrl(), 'rel_bugs_demo')
    const env = { DATABASE_URL: d.url, LISTEN_ADDR: '127.0.0.1:0', SLOT_NAME: slotFor(d), LOG_LEVEL: 'warn' }
    try {
      const first = await startDaemon(['serve', '--demo'], { env })
      first.proc.kill('SIGTERM')
      await first.exited
      // The app: a transaction that touched products and will touch orders next.
      const app = new pg.Client({ connectionString: d.url })
      await app.connect()
      await app.query('BEGIN')
      await app.query(`UPDATE products SET units_in_stock = units_in_stock + 1`)
      const daemon = startDaemon(['serve', '--demo'], { env })
      daemon.catch(() => {})
      // The daemon's demo schema SQL now waits for the app's lock on products while holding orders.
      await poll(
        async () =>
          (
            await d.pool.query(
              `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
              [(app as unknown as { processID: number }).processID],
            )
          ).rowCount,
        30_000,
        'daemon waiting for a lock',
      )
      const appResult = await app
        .query(`UPDATE orders SET total_cents = total_cents WHERE false`)
        .then(() => app.query('COMMIT'))
        .then(
          () => 'committed',
          (e: Error) => `failed: ${e.message}`,
        )
      await app.end().catch(() => {})
      const daemonResult = await daemon.then(
        (x) => {
          x.kill()
          return 'started'
        },
        (e: Error) => `failed: ${e.message.split('\n').find((l) => l.includes('deadlock')) ?? e.message.slice(0, 200)}`,
      )
      // BUG: DEMO_SCHEMA_SQL re-runs ALTER TABLE … REPLICA IDENTITY FULL (ACCESS EXCLUSIVE) on every start.
      expect({ app: appResult, daemon: daemonResult }).toEqual({ app: 'committed', daemon: 'started' })
    } finally {
      await d.drop()
    }
  })
})
