/**
 * Server-side changes a client meets mid-life, end to end (real PostgreSQL, the real server, SQLite files): a column
 * added to a synced table, and a client deactivated for staleness whose server refuses it (403).
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, startSynced } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'

let server: PgServer
const clients: SynchroClient[] = []

beforeAll(async () => {
  // A deactivated client is refused (403) rather than let through by the stale-client hook.
  server = await startPgServer('synchro_client_server_changes', { hooks: { onStaleClient: () => false } })
}, 120_000)

afterAll(() => stopAll(clients, server), 60_000)

function newClient(userID: string): SynchroClient {
  const c = makeClient(server.url, { userID, clientID: `client-${randomUUID()}`, maxRetryAttempts: 1 })
  clients.push(c)
  return c
}

async function syncedOrder(c: SynchroClient, user: string): Promise<string> {
  const id = randomUUID()
  await c.execute(
    `INSERT INTO orders (id, user_id, ship_address, metadata, total_cents) VALUES (?, ?, 'v1', '{}', 1)`,
    [id, user],
  )
  await c.syncNow()
  await server.walCaughtUp()
  await c.syncNow()
  return id
}

describe('server-side changes', () => {
  it('a column added on the server reaches the rows the client already had; a later local edit keeps it', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    const id = await syncedOrder(c, user)
    // ADD COLUMN with a volatile default writes every row, but logs no change: only a snapshot brings the values.
    await server.db.pool.query(`ALTER TABLE orders ADD COLUMN reviewed_at timestamptz DEFAULT now()`)
    const { rows } = await server.db.pool.query(`SELECT reviewed_at::text AS r FROM orders WHERE id = $1`, [id])
    await c.syncNow() // 409: migrate, then a re-snapshot
    const local = await c.queryOne<{ reviewed_at: string | null }>('SELECT reviewed_at FROM orders WHERE id = ?', [id])
    expect(local?.reviewed_at).not.toBeNull()
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    await c.syncNow()
    const after = await server.db.pool.query(`SELECT ship_address, reviewed_at::text AS r FROM orders WHERE id = $1`, [
      id,
    ])
    expect(after.rows[0]).toEqual({ ship_address: 'v2', r: rows[0].r })
  })

  it('a client refused as stale (403) registers again on its own and pushes what it queued', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    await syncedOrder(c, user)
    await server.db.pool.query(`UPDATE sync_clients SET is_active = false WHERE user_id = $1`, [user])
    const id = randomUUID()
    await c.execute(
      `INSERT INTO orders (id, user_id, ship_address, metadata, total_cents) VALUES (?, ?, 'late', '{}', 1)`,
      [id, user],
    )
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    const { rows } = await server.db.pool.query(`SELECT ship_address FROM orders WHERE id = $1`, [id])
    expect(rows).toEqual([{ ship_address: 'late' }])
  })

  it('a row with a queued edit when the server added and backfilled a column keeps the server value', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    const id = await syncedOrder(c, user)
    await server.db.pool.query(`ALTER TABLE orders ADD COLUMN priority integer`)
    await server.db.pool.query(`UPDATE orders SET priority = 5 WHERE id = $1`, [id])
    await server.walCaughtUp()
    // Edited before the client learns of the column: its push meets 409, the client migrates and pushes again.
    await c.execute(`UPDATE orders SET ship_address = 'edited' WHERE id = ?`, [id])
    await c.syncNow()
    await server.walCaughtUp()
    await c.syncNow()
    const srv = await server.db.pool.query(`SELECT ship_address, priority FROM orders WHERE id = $1`, [id])
    expect(srv.rows[0]).toEqual({ ship_address: 'edited', priority: 5 })
    expect(await c.queryOne('SELECT ship_address, priority FROM orders WHERE id = ?', [id])).toEqual({
      ship_address: 'edited',
      priority: 5,
    })
    expect(await c.pendingChangeCount()).toBe(0)
  })

  it('an edit after the server added a NOT NULL DEFAULT now() column is applied, not rejected', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    const id = await syncedOrder(c, user)
    await server.db.pool.query(`ALTER TABLE orders ADD COLUMN packed_at timestamptz NOT NULL DEFAULT now()`)
    await c.execute(`UPDATE orders SET ship_address = 'packed' WHERE id = ?`, [id])
    await c.syncNow()
    const srv = await server.db.pool.query(`SELECT ship_address FROM orders WHERE id = $1`, [id])
    expect(srv.rows[0]).toEqual({ ship_address: 'packed' })
    expect(await c.rejections()).toEqual([])
  })
})

describe('a column retyped on the server', () => {
  it('bigint → numeric: a long decimal arrives exact, and a later local edit does not push it back rounded', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    await server.db.pool.query(`ALTER TABLE orders ADD COLUMN ref bigint`)
    const id = await syncedOrder(c, user)
    await server.db.pool.query(`ALTER TABLE orders ALTER COLUMN ref TYPE numeric`)
    const exact = '12345678901234567890.123456789'
    await server.db.pool.query(`UPDATE orders SET ref = $2 WHERE id = $1`, [id, exact])
    await server.walCaughtUp()
    await c.syncNow()
    const local = await c.queryOne<{ ref: unknown }>('SELECT CAST(ref AS TEXT) AS ref FROM orders WHERE id = ?', [id])
    expect(local?.ref).toBe(exact)
    await c.execute(`UPDATE orders SET ship_address = 'after retype' WHERE id = ?`, [id])
    await c.syncNow()
    const srv = await server.db.pool.query(`SELECT ship_address, ref::text AS ref FROM orders WHERE id = $1`, [id])
    expect(srv.rows[0]).toEqual({ ship_address: 'after retype', ref: exact })
  })

  it('integer → text: a code with leading zeros keeps them locally and on the server', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    await server.db.pool.query(`ALTER TABLE orders ADD COLUMN code integer`)
    const id = await syncedOrder(c, user)
    await server.db.pool.query(`ALTER TABLE orders ALTER COLUMN code TYPE text`)
    await server.db.pool.query(`UPDATE orders SET code = '007' WHERE id = $1`, [id])
    await server.walCaughtUp()
    await c.syncNow()
    expect(await c.queryOne('SELECT code FROM orders WHERE id = ?', [id])).toEqual({ code: '007' })
    await c.execute(`UPDATE orders SET ship_address = 'after retype' WHERE id = ?`, [id])
    await c.syncNow()
    const srv = await server.db.pool.query(`SELECT ship_address, code FROM orders WHERE id = $1`, [id])
    expect(srv.rows[0]).toEqual({ ship_address: 'after retype', code: '007' })
  })
})

describe('a NOT NULL column the server added with a default SQLite cannot add', () => {
  it('a row the app creates afterwards without the column reaches the server with the server default', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    await syncedOrder(c, user)
    await server.db.pool.query(`ALTER TABLE orders ADD COLUMN picked_at timestamptz NOT NULL DEFAULT now()`)
    await c.syncNow() // 409: migrate (the column is nullable locally, no default), then a re-snapshot
    // The app's code does not know the column (a fresh install has it NOT NULL DEFAULT CURRENT_TIMESTAMP).
    const id = randomUUID()
    await c.execute(
      `INSERT INTO orders (id, user_id, ship_address, metadata, total_cents) VALUES (?, ?, 'new', '{}', 1)`,
      [id, user],
    )
    await c.syncNow()
    expect(await c.rejections()).toEqual([])
    const srv = await server.db.pool.query(
      `SELECT ship_address, picked_at IS NOT NULL AS p FROM orders WHERE id = $1`,
      [id],
    )
    expect(srv.rows).toEqual([{ ship_address: 'new', p: true }])
  })
})
