/**
 * End-to-end: real PostgreSQL + the real server (`@synchro/server`: engine, HTTP handler over node:http, WAL
 * consumer) + SynchroClients over real SQLite files.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, startSynced, waitFor } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll, switchableFetch } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'
import { DatabaseError, NetworkError } from './errors.js'
import type { FetchLike } from './sync/transport.js'

let server: PgServer
let db: PgServer['db']
let url = ''
const clients: SynchroClient[] = []

/** A fetch whose next push reaches the server (and is applied) but whose answer is lost, like a reset connection. */
function losingFetch(): { fetch: FetchLike; loseNextPush: () => void } {
  let lose = false
  return {
    loseNextPush: () => {
      lose = true
    },
    fetch: async (input, init) => {
      const res = await fetch(input, init)
      if (lose && String(input).endsWith('/sync/push')) {
        lose = false
        await res.text()
        throw new TypeError('fetch failed (connection reset after the server answered)')
      }
      return res
    },
  }
}

function newClient(userID: string, over: Parameters<typeof makeClient>[1] = {}): SynchroClient {
  const c = makeClient(url, { userID, clientID: `client-${randomUUID()}`, maxRetryAttempts: 1, ...over })
  clients.push(c)
  return c
}

const walCaughtUp = () => server.walCaughtUp()

beforeAll(async () => {
  server = await startPgServer('synchro_client_e2e')
  db = server.db
  url = server.url
}, 120_000)

afterAll(() => stopAll(clients, server), 60_000)

interface OrderRow {
  id: string
  ship_address: string
  total_cents: number
  deleted: boolean
}

async function serverOrders(userID: string): Promise<OrderRow[]> {
  const { rows } = await db.pool.query<{ id: string; ship_address: string; total_cents: string; deleted: boolean }>(
    `SELECT id::text, ship_address, total_cents::text, deleted_at IS NOT NULL AS deleted FROM orders WHERE user_id = $1 ORDER BY id`,
    [userID],
  )
  return rows.map((r) => ({ ...r, total_cents: Number(r.total_cents) }))
}

async function localOrders(c: SynchroClient): Promise<OrderRow[]> {
  const rows = await c.query<{ id: string; ship_address: string; total_cents: number; deleted: number }>(
    `SELECT id, ship_address, total_cents, deleted_at IS NOT NULL AS deleted FROM orders ORDER BY id`,
  )
  return rows.map((r) => ({ ...r, deleted: r.deleted === 1 }))
}

async function insertOrder(c: SynchroClient, userID: string, id: string, address: string): Promise<void> {
  await c.execute(`INSERT INTO orders (id, user_id, ship_address, metadata, total_cents) VALUES (?, ?, ?, ?, ?)`, [
    id,
    userID,
    address,
    JSON.stringify({ from: 'client' }),
    100,
  ])
}

describe('end to end against @synchro/server', () => {
  it('two clients edit offline (creates, updates, deletes, conflicting updates), reconnect and converge', async () => {
    const user = randomUUID()
    const netA = switchableFetch()
    const netB = switchableFetch()
    const a = newClient(user, { fetch: netA.fetch })
    const b = newClient(user, { fetch: netB.fetch })
    const conflictsB: unknown[] = []
    b.onConflict((e) => conflictsB.push(e))
    await startSynced(a)
    await startSynced(b)
    // Bootstrap brought the global catalog (read-only products, NULL-owner categories).
    expect((await a.query('SELECT id FROM products')).length).toBe(5)
    const cats = await b.query<{ search_tags: string }>('SELECT search_tags FROM categories ORDER BY name')
    expect(cats.map((r) => JSON.parse(r.search_tags))).toContainEqual(['tech', 'gadgets'])
    const thumb = await a.queryOne<{ thumbnail: Uint8Array }>(`SELECT thumbnail FROM products WHERE name = 'Widget A'`)
    expect(Array.from(thumb!.thumbnail)).toEqual([1, 2])

    const [o1, o2, o3, o4] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
    await insertOrder(a, user, o1, 'a-1')
    await insertOrder(a, user, o2, 'a-2')
    await a.execute(
      `INSERT INTO order_details (id, order_id, product_name, quantity, unit_price) VALUES (?, ?, 'Widget A', 2, 9.99)`,
      [randomUUID(), o1],
    )
    await a.syncNow()
    expect(await a.pendingChangeCount()).toBe(0)
    await walCaughtUp()
    await b.syncNow()
    expect((await localOrders(b)).map((o) => o.id).sort()).toEqual([o1, o2].sort())

    // Offline edits on both sides.
    netA.online.value = false
    netB.online.value = false
    await a.execute(`UPDATE orders SET ship_address = 'a-edit' WHERE id = ?`, [o1])
    await a.execute(`DELETE FROM orders WHERE id = ?`, [o2])
    await insertOrder(a, user, o4, 'a-4')
    await b.execute(`UPDATE orders SET ship_address = 'b-edit', total_cents = 777 WHERE id = ?`, [o1])
    await insertOrder(b, user, o3, 'b-3')
    await b.execute(`INSERT INTO order_details (id, order_id, product_name) VALUES (?, ?, 'Gizmo D')`, [
      randomUUID(),
      o3,
    ])
    await b.execute(`UPDATE orders SET total_cents = 5 WHERE id = ?`, [o2])
    await expect(a.syncNow()).rejects.toBeInstanceOf(NetworkError)
    expect(await a.pendingChangeCount()).toBe(3)
    expect(await b.pendingChangeCount()).toBe(4)

    // Reconnect: A first, then B (B's edit of o1 is older than A's accepted write: the server wins).
    netA.online.value = true
    await a.syncNow()
    netB.online.value = true
    await b.syncNow()
    await walCaughtUp()
    await a.syncNow()
    await b.syncNow()

    const expected = await serverOrders(user)
    expect(expected.map((o) => o.id).sort()).toEqual([o1, o2, o3, o4].sort())
    expect(await localOrders(a)).toEqual(expected)
    expect(await localOrders(b)).toEqual(expected)
    expect(await a.pendingChangeCount()).toBe(0)
    expect(await b.pendingChangeCount()).toBe(0)
    expect(expected.find((o) => o.id === o2)!.deleted).toBe(true)
    expect(expected.find((o) => o.id === o1)!.ship_address).toBe('a-edit')
    expect(conflictsB.length).toBeGreaterThanOrEqual(1)
    const details = await db.pool.query(
      `SELECT count(*)::int AS n FROM order_details d JOIN orders o ON o.id = d.order_id WHERE o.user_id = $1`,
      [user],
    )
    const localN = (await a.queryOne<{ n: number }>('SELECT count(*) AS n FROM order_details'))!.n
    // Every captured change was bucketed (a child pushed with its parent used to hit a WAL visibility race).
    expect((await db.pool.query('SELECT count(*)::int AS n FROM sync_rule_failures')).rows[0].n).toBe(0)
    expect(localN).toBe(details.rows[0].n)
    // JSON column arrived on the server as JSON (Decision 23), not as a string.
    const meta = await db.pool.query(`SELECT metadata FROM orders WHERE id = $1`, [o4])
    expect(meta.rows[0].metadata).toEqual({ from: 'client' })
  })

  it('a third client bootstraps 10k rows by snapshot, reporting progress', async () => {
    const user = randomUUID()
    await db.pool.query(
      `INSERT INTO orders (user_id, ship_address, total_cents) SELECT $1, 'bulk ' || g, g FROM generate_series(1, 10000) g`,
      [user],
    )
    const c = newClient(user, { snapshotPageSize: 1000, pullPageSize: 1000 })
    const progress: { rows: number; pages: number }[] = []
    c.onStatusChange((e) => {
      if (e.progress?.phase === 'snapshot') progress.push(e.progress)
    })
    const t0 = Date.now()
    await startSynced(c)
    const ms = Date.now() - t0
    expect(c.status.status).toBe('idle')
    expect((await c.queryOne<{ n: number }>('SELECT count(*) AS n FROM orders'))!.n).toBe(10_000)
    expect(progress.at(-1)!.rows).toBeGreaterThanOrEqual(10_000)
    expect(progress.at(-1)!.pages).toBeGreaterThanOrEqual(10)
    expect(ms).toBeLessThan(30_000)
    // The rebuild deferred the WAL's checkpoints to its end and put SQLite's threshold back.
    expect((await c.queryOne<{ wal_autocheckpoint: number }>('PRAGMA wal_autocheckpoint'))!.wal_autocheckpoint).toBe(
      1000,
    )
    await walCaughtUp()
    await c.syncNow()
    expect((await c.queryOne<{ n: number }>('SELECT count(*) AS n FROM orders'))!.n).toBe(10_000)
  })

  it('a server-side ALTER TABLE … ADD COLUMN mid-session is picked up without losing pending changes', async () => {
    const user = randomUUID()
    const net = switchableFetch()
    const c = newClient(user, { fetch: net.fetch })
    await startSynced(c)
    await c.createTable('drafts', [
      { name: 'id', type: 'TEXT', primaryKey: true },
      { name: 'body', type: 'TEXT' },
    ])
    await c.execute(`INSERT INTO drafts VALUES ('d1', 'local only')`)
    net.online.value = false
    const o = randomUUID()
    await insertOrder(c, user, o, 'before-alter')
    await db.pool.query(`ALTER TABLE orders ADD COLUMN gift_note text NOT NULL DEFAULT ''`)
    net.online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    const cols = await c.query<{ name: string }>(`SELECT name FROM pragma_table_info('orders')`)
    expect(cols.map((x) => x.name)).toContain('gift_note')
    expect((await serverOrders(user)).map((x) => x.id)).toEqual([o])
    await c.execute(`UPDATE orders SET gift_note = 'happy birthday' WHERE id = ?`, [o])
    await c.syncNow()
    const { rows } = await db.pool.query(`SELECT gift_note FROM orders WHERE id = $1`, [o])
    expect(rows[0].gift_note).toBe('happy birthday')
    expect(await c.query('SELECT * FROM drafts')).toEqual([{ id: 'd1', body: 'local only' }])
  })

  it('an unreachable server never loses queued writes and never stalls the queue', async () => {
    const user = randomUUID()
    const net = switchableFetch()
    const c = newClient(user, { fetch: net.fetch, syncInterval: 0.2, maxRetryAttempts: 0, pushDebounce: 0.05 })
    await startSynced(c)
    net.online.value = false
    const ids: string[] = []
    for (let i = 0; i < 30; i++) {
      const id = randomUUID()
      ids.push(id)
      await insertOrder(c, user, id, `offline-${i}`)
    }
    await c.execute(`UPDATE orders SET total_cents = 1 WHERE id = ?`, [ids[0]!])
    await waitFor(() => c.status.status === 'error', 5000, 'error status while offline')
    expect(c.status.error?.code).toBe('NETWORK_ERROR')
    expect(await c.pendingChangeCount()).toBe(30)
    // Local work keeps going while offline.
    expect((await c.queryOne<{ n: number }>('SELECT count(*) AS n FROM orders'))!.n).toBe(30)
    net.online.value = true
    // No syncNow: the timer alone drains the queue.
    await waitFor(async () => (await c.pendingChangeCount()) === 0, 10_000, 'timer drained the queue')
    const srv = await serverOrders(user)
    expect(srv).toHaveLength(30)
    expect(srv.find((o) => o.id === ids[0])!.total_cents).toBe(1)
  })

  it('writes made after a create push whose answer was lost reach the server (delete, update)', async () => {
    const user = randomUUID()
    const net = losingFetch()
    // Pushes only by syncNow below (the write-triggered push would go out at once otherwise).
    const c = newClient(user, { fetch: net.fetch, maxRetryAttempts: 0, pushDebounce: 3600 })
    const conflicts: unknown[] = []
    c.onConflict((e) => conflicts.push(e))
    await startSynced(c)
    const [gone, edited] = [randomUUID(), randomUUID()]
    await insertOrder(c, user, gone, 'v1')
    await insertOrder(c, user, edited, 'v1')
    net.loseNextPush()
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    // Both creates landed; the client could not know.
    expect((await serverOrders(user)).map((o) => o.ship_address)).toEqual(['v1', 'v1'])
    await c.execute('DELETE FROM orders WHERE id = ?', [gone])
    await c.execute(`UPDATE orders SET ship_address = 'v2', total_cents = 2 WHERE id = ?`, [edited])
    await c.syncNow()
    await walCaughtUp()
    await c.syncNow()
    const srv = await serverOrders(user)
    expect(srv.find((o) => o.id === gone)!.deleted).toBe(true)
    expect(srv.find((o) => o.id === edited)).toMatchObject({ ship_address: 'v2', total_cents: 2, deleted: false })
    expect(await localOrders(c)).toEqual(srv)
    expect(await c.pendingChangeCount()).toBe(0)
    expect(conflicts).toEqual([])
  })

  it('an undelete made while its delete is being pushed: the row ends live and restored on both sides', async () => {
    const user = randomUUID()
    // One step per push request, in order, run before it is sent: a local write, or a throw (the network drops it).
    const beforePush: (() => Promise<unknown>)[] = []
    const hooked: FetchLike = async (input, init) => {
      if (String(input).endsWith('/sync/push')) await beforePush.shift()?.()
      return fetch(input, init)
    }
    const c = newClient(user, { fetch: hooked, maxRetryAttempts: 0, pushDebounce: 3600 })
    const conflicts: unknown[] = []
    c.onConflict((e) => conflicts.push(e))
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute('DELETE FROM orders WHERE id = ?', [id])
    beforePush.push(
      () => c.execute(`UPDATE orders SET deleted_at = NULL, ship_address = 'restored' WHERE id = ?`, [id]),
      () => Promise.reject(new TypeError('fetch failed (offline)')),
    )
    // The delete is applied; the push that restores the row cannot be sent: locally it stays restored meanwhile.
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    const sql = 'SELECT ship_address, deleted_at FROM orders WHERE id = ?'
    expect(await c.queryOne(sql, [id])).toEqual({ ship_address: 'restored', deleted_at: null })
    await c.syncNow()
    await walCaughtUp()
    await c.syncNow()
    const srv = await serverOrders(user)
    expect(srv).toEqual([{ id, ship_address: 'restored', total_cents: 100, deleted: false }])
    expect(await localOrders(c)).toEqual(srv)
    expect(await c.pendingChangeCount()).toBe(0)
    expect(conflicts).toEqual([])
  })

  it('an upper-case uuid is refused at the local write, so a pulled edit never lands in a second row to be overwritten', async () => {
    const user = randomUUID()
    const a = newClient(user)
    const b = newClient(user)
    await startSynced(a)
    await startSynced(b)
    // iOS `UUID().uuidString` is upper case; the server would store (and send back) the id in lower case.
    const upper = randomUUID().toUpperCase()
    const refused = insertOrder(a, user, upper, 'a-1')
    await expect(refused).rejects.toBeInstanceOf(DatabaseError)
    await expect(refused).rejects.toThrow(
      'synchro: orders.id is a uuid: write it in lower case (the server stores uuids in lower case',
    )
    expect(await localOrders(a)).toEqual([])
    expect(await a.pendingChangeCount()).toBe(0)
    await a.syncNow()
    expect(await serverOrders(user)).toEqual([])

    // The scenario of the bug, with the id written as the error says: one row everywhere, nobody's edit lost.
    const id = upper.toLowerCase()
    await insertOrder(a, user, id, 'a-1')
    await a.syncNow()
    await walCaughtUp()
    await b.syncNow()
    await b.execute(`UPDATE orders SET ship_address = 'b-edit' WHERE id = ?`, [id])
    await b.syncNow()
    await walCaughtUp()
    await a.syncNow()
    expect(await localOrders(a)).toEqual([{ id, ship_address: 'b-edit', total_cents: 100, deleted: false }])
    await a.execute(`UPDATE orders SET total_cents = 7 WHERE id = ?`, [id])
    await a.syncNow()
    await walCaughtUp()
    await b.syncNow()
    const srv = await serverOrders(user)
    expect(srv).toEqual([{ id, ship_address: 'b-edit', total_cents: 7, deleted: false }])
    expect(await localOrders(a)).toEqual(srv)
    expect(await localOrders(b)).toEqual(srv)
  })

  it('live: with the timer off, a write on A reaches B through the event stream (no syncNow on B)', async () => {
    const user = randomUUID()
    const a = newClient(user)
    const b = newClient(user, { live: true })
    await startSynced(a)
    await startSynced(b)
    const id = randomUUID()
    await insertOrder(a, user, id, 'live-1')
    await a.syncNow()
    await waitFor(async () => (await b.queryOne('SELECT id FROM orders WHERE id = ?', [id])) !== null, 10_000)
    // And a write made directly in PostgreSQL by another application.
    const direct = randomUUID()
    await db.pool.query(`INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, 'direct')`, [direct, user])
    await waitFor(async () => (await b.queryOne('SELECT id FROM orders WHERE id = ?', [direct])) !== null, 10_000)
  })
})
