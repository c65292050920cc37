/**
 * Nothing silent, end to end (real PostgreSQL, real server over HTTP, real SQLite): every write ends on the server
 * or in `rejections()`, the local row agrees with the server afterwards, confirmation works across offline periods
 * and restarts, and one poisoned record does not hold back the queue.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { makeClient, manualClock, startSynced } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll, switchableFetch } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'
import type { Rejection } from './sync/rejections.js'
import type { FetchLike } from './sync/transport.js'

let server: PgServer
const clients: SynchroClient[] = []

function newClient(userID: string, over: Parameters<typeof makeClient>[1] = {}): SynchroClient {
  const c = makeClient(server.url, { userID, clientID: `client-${randomUUID()}`, maxRetryAttempts: 1, ...over })
  clients.push(c)
  return c
}

beforeAll(async () => {
  server = await startPgServer('synchro_client_reject')
}, 120_000)

afterAll(() => stopAll(clients, server), 60_000)

function collect(c: SynchroClient): Rejection[] {
  const out: Rejection[] = []
  c.onRejected((r) => out.push(r))
  return out
}

async function insertOrder(c: SynchroClient, userID: string, id: string, address: string): Promise<void> {
  await c.execute(`INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)`, [id, userID, address])
}

/** Live rows of a table as (id, one column), both sides, sorted: what "the device agrees with PostgreSQL" means. */
async function liveLocal(c: SynchroClient, table: string, col: string): Promise<[string, string][]> {
  const rows = await c.query<{ id: string; v: unknown }>(
    `SELECT id, ${col} AS v FROM ${table} WHERE deleted_at IS NULL ORDER BY id`,
  )
  return rows.map((r) => [r.id, String(r.v)])
}

async function liveServer(sql: string, params: unknown[] = []): Promise<[string, string][]> {
  const { rows } = await server.db.pool.query<{ id: string; v: unknown }>(sql, params)
  return rows.map((r) => [r.id, String(r.v)])
}

const ordersOf = (user: string) =>
  liveServer(
    `SELECT id::text, ship_address AS v FROM orders WHERE user_id::text = $1 AND deleted_at IS NULL ORDER BY id::text`,
    [user],
  )

describe('rejections are surfaced, durable and reconciled', () => {
  it("the README's userID 'u1' against uuid owner columns: invalid_data, event, row removed, durable until cleared", async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {})
    try {
      const c = newClient('u1')
      await startSynced(c)
      const [a, b] = [randomUUID(), randomUUID()]
      await insertOrder(c, 'u1', a, 'Main St 1')
      await insertOrder(c, 'u1', b, 'Main St 2')
      // No listener: the rejection is not silent, it is logged — once per reason, not once per write.
      await c.flush()
      expect(warn).toHaveBeenCalledTimes(1)
      expect(String(warn.mock.calls[0]![0])).toContain('invalid_data')
      await expect(c.confirmed('orders', a)).rejects.toMatchObject({
        code: 'WRITE_REJECTED',
        rejection: { table: 'orders', recordID: a, reasonCode: 'invalid_data' },
      })
      const list = await c.rejections()
      expect(list.map((r) => r.recordID).sort()).toEqual([a, b].sort())
      expect(list[0]).toMatchObject({
        operation: 'create',
        status: 'rejected_terminal',
        reasonCode: 'invalid_data',
        resolution: 'removed',
        serverData: null,
      })
      expect(list.find((r) => r.recordID === a)!.clientData).toMatchObject({ ship_address: 'Main St 1' })
      // The device agrees with PostgreSQL: the rows are gone locally, nothing is queued.
      expect(await c.query('SELECT id FROM orders')).toEqual([])
      expect(await c.pendingChangeCount()).toBe(0)

      // Durable: a restarted client still has them (and confirmed() still rejects) until the app clears them.
      const path = c.getPath()!
      await c.close()
      const c2 = newClient('u1', { dbPath: path })
      const changes: number[] = []
      c2.onRejectionsChange(() => changes.push(1))
      expect(await c2.rejections()).toEqual(list)
      await expect(c2.confirmed('orders', b)).rejects.toMatchObject({ code: 'WRITE_REJECTED' })
      await c2.clearRejections([list[0]!.id])
      expect((await c2.rejections()).map((r) => r.id)).toEqual([list[1]!.id])
      await c2.clearRejections()
      expect(await c2.rejections()).toEqual([])
      expect(changes).toHaveLength(2)
      await c2.close()
    } finally {
      warn.mockRestore()
    }
  })

  it('a child created under a parent that was created and deleted before any push: rejected, removed, surfaced', async () => {
    const user = randomUUID()
    const c = newClient(user)
    const seen = collect(c)
    await startSynced(c)
    const [order, detail] = [randomUUID(), randomUUID()]
    // One transaction: nothing can be pushed in between (the first write after a quiet period is pushed at once).
    await c.writeTransaction(async (tx) => {
      await tx.execute(`INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, 'short-lived')`, [order, user])
      await tx.execute(`INSERT INTO order_details (id, order_id, product_name) VALUES (?, ?, 'Widget A')`, [
        detail,
        order,
      ])
      await tx.execute('DELETE FROM orders WHERE id = ?', [order])
    })
    await expect(c.confirmed('order_details', detail)).rejects.toMatchObject({ code: 'WRITE_REJECTED' })
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({
      table: 'order_details',
      recordID: detail,
      operation: 'create',
      status: 'rejected_terminal',
      resolution: 'removed',
    })
    expect(seen[0]!.reasonCode).toBe('forbidden')
    // Not live locally alone: the device holds exactly what PostgreSQL holds for this user.
    expect(await liveLocal(c, 'order_details', 'product_name')).toEqual([])
    expect(await liveLocal(c, 'orders', 'ship_address')).toEqual(await ordersOf(user))
    expect((await server.db.pool.query('SELECT 1 FROM order_details WHERE id = $1', [detail])).rowCount).toBe(0)
    expect(await c.pendingChangeCount()).toBe(0)
  })

  it('read-only and foreign writes: rejected, and the local rows come back to the server values', async () => {
    const user = randomUUID()
    const c = newClient(user)
    const seen = collect(c)
    await startSynced(c)
    const widget = (await c.queryOne<{ id: string }>(`SELECT id FROM products WHERE name = 'Widget A'`))!.id
    const category = (await c.queryOne<{ id: string }>('SELECT id FROM categories ORDER BY name LIMIT 1'))!.id
    const newProduct = randomUUID()
    await c.execute(`UPDATE products SET name = 'Hacked' WHERE id = ?`, [widget])
    await c.execute(`INSERT INTO products (id, name, unit_price) VALUES (?, 'Mine', 1)`, [newProduct])
    await c.execute(`UPDATE categories SET name = 'Mine now' WHERE id = ?`, [category])
    await c.flush()
    // The re-download (snapshot) runs in the same cycle, right after the push; syncNow() waits for a whole cycle.
    await c.syncNow()
    const byId = new Map(seen.map((r) => [r.recordID, r]))
    expect(byId.get(widget)).toMatchObject({
      status: 'rejected_terminal',
      reasonCode: 'table_read_only',
      operation: 'update',
      resolution: 'refetch',
    })
    expect(byId.get(newProduct)).toMatchObject({ reasonCode: 'table_read_only', resolution: 'removed' })
    // A global category belongs to nobody: the server refuses the write without leaking its row.
    expect(byId.get(category)).toMatchObject({
      status: 'rejected_terminal',
      reasonCode: 'forbidden',
      operation: 'update',
      resolution: 'refetch',
    })
    expect(await liveLocal(c, 'products', 'name')).toEqual(
      await liveServer('SELECT id::text, name AS v FROM products WHERE deleted_at IS NULL ORDER BY id::text'),
    )
    expect(await liveLocal(c, 'categories', 'name')).toEqual(
      await liveServer(
        `SELECT id::text, name AS v FROM categories WHERE deleted_at IS NULL AND (user_id IS NULL OR user_id::text = $1)
         ORDER BY id::text`,
        [user],
      ),
    )
    expect(await c.pendingChangeCount()).toBe(0)
  })

  it('a conflict the server won is a rejection too (with the server row), and onConflict still fires', async () => {
    const user = randomUUID()
    const a = newClient(user)
    const netB = switchableFetch()
    const b = newClient(user, { fetch: netB.fetch })
    await startSynced(a)
    await startSynced(b)
    const id = randomUUID()
    await insertOrder(a, user, id, 'v1')
    await a.confirmed('orders', id)
    await server.walCaughtUp()
    await b.syncNow()
    netB.online.value = false
    await b.execute(`UPDATE orders SET ship_address = 'older edit' WHERE id = ?`, [id])
    await a.execute(`UPDATE orders SET ship_address = 'newer edit' WHERE id = ?`, [id])
    await a.confirmed('orders', id)
    const seen = collect(b)
    const conflicts: unknown[] = []
    b.onConflict((e) => conflicts.push(e))
    netB.online.value = true
    await expect(b.confirmed('orders', id)).rejects.toMatchObject({ rejection: { status: 'conflict' } })
    expect(seen[0]).toMatchObject({
      status: 'conflict',
      reasonCode: 'server_won_conflict',
      resolution: 'server_version',
      serverData: { ship_address: 'newer edit' },
      clientData: { ship_address: 'older edit' },
    })
    expect(conflicts).toHaveLength(1)
    expect(await liveLocal(b, 'orders', 'ship_address')).toEqual(await ordersOf(user))
  })
})

describe('offline start and confirmation', () => {
  it('start() resolves with a server that never answers; confirmed()/flush() survive close and restart', async () => {
    const user = randomUUID()
    const clientID = `client-${randomUUID()}`
    const first = newClient(user, { clientID })
    await startSynced(first)
    const path = first.getPath()!
    await first.close()

    // A network that swallows every request: nothing is ever answered (aborted only when sync stops).
    const black: FetchLike = (_input, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(new Error('aborted'))))
    const offline = newClient(user, { clientID, dbPath: path, fetch: black, requestTimeout: 0 })
    await offline.start() // would never resolve if it waited for the first cycle
    expect(offline.status.status).not.toBe('idle')
    const id = randomUUID()
    await insertOrder(offline, user, id, 'written offline')
    expect(await liveLocal(offline, 'orders', 'ship_address')).toEqual([[id, 'written offline']])
    const confirmed = offline.confirmed('orders', id)
    const flushed = offline.flush()
    await offline.close()
    await expect(confirmed).rejects.toMatchObject({ code: 'CLOSED' })
    await expect(flushed).rejects.toMatchObject({ code: 'CLOSED' })

    // Restart online: the write is still queued and confirmation can be asked for again.
    const online = newClient(user, { clientID, dbPath: path })
    await online.start()
    await online.confirmed('orders', id)
    expect(await ordersOf(user)).toEqual([[id, 'written offline']])
    await online.flush()
    expect(await online.rejections()).toEqual([])
  })
})

describe('the queue never stalls and never spins', () => {
  it('one poisoned record (always rejected_retryable) does not delay 100 later writes, then is quarantined', async () => {
    await server.db.pool.query(`
      CREATE OR REPLACE FUNCTION poison_orders() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.ship_address = 'poison' THEN RAISE EXCEPTION 'poisoned record'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER poison_orders BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION poison_orders();`)
    try {
      const user = randomUUID()
      const clock = manualClock()
      const poison = randomUUID()
      let poisonPushes = 0
      const counting: FetchLike = (input, init) => {
        if (String(input).endsWith('/sync/push') && String(init?.body).includes(poison)) poisonPushes++
        return fetch(input, init)
      }
      const c = newClient(user, {
        timers: clock.timers,
        maxPushAttempts: 3,
        pushBatchSize: 10,
        fetch: counting,
        pushDebounce: 3600,
      })
      const seen = collect(c)
      await startSynced(c)
      // The poisoned write is the oldest: it is in the first batch, ahead of everything else.
      await insertOrder(c, user, poison, 'poison')
      const later: string[] = []
      await c.writeTransaction(async (tx) => {
        for (let i = 0; i < 100; i++) {
          const id = randomUUID()
          later.push(id)
          await tx.execute(`INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)`, [id, user, `w${i}`])
        }
      })
      await c.syncNow()
      // All 100 later writes are on the server after one cycle; only the poisoned one waits.
      expect((await ordersOf(user)).map(([id]) => id).sort()).toEqual([...later].sort())
      expect(await c.pendingChangeCount()).toBe(1)
      expect(poisonPushes).toBe(1)
      // Not due yet: another cycle does not push it again (no spinning).
      await c.syncNow()
      expect(poisonPushes).toBe(1)
      expect(c.status.status).toBe('idle')
      // Due after 1 s, then 2 s (capped exponential backoff); the third answer quarantines it.
      clock.advance(1000)
      await c.syncNow()
      expect(poisonPushes).toBe(2)
      expect(seen).toEqual([])
      clock.advance(2000)
      await c.syncNow()
      expect(poisonPushes).toBe(3)
      expect(seen).toHaveLength(1)
      expect(seen[0]).toMatchObject({
        recordID: poison,
        status: 'quarantined',
        reasonCode: 'create_failed',
        operation: 'create',
      })
      expect(await c.pendingChangeCount()).toBe(0)
      await expect(c.confirmed('orders', poison)).rejects.toMatchObject({ rejection: { status: 'quarantined' } })
      // The device agrees with PostgreSQL (the poisoned row is not live locally alone).
      await c.syncNow()
      expect(await liveLocal(c, 'orders', 'ship_address')).toEqual(await ordersOf(user))
    } finally {
      await server.db.pool.query('DROP TRIGGER IF EXISTS poison_orders ON orders')
    }
  })
})
