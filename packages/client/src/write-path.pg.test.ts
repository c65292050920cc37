/**
 * The write path against a real server: local writes interleaved with pushes (answers lost, conflicts, deletes and
 * undeletes) end on the server or in `rejections()`, never reverted or overwritten by the client's own older state.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, startSynced } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'

let server: PgServer
const clients: SynchroClient[] = []

beforeAll(async () => {
  server = await startPgServer('synchro_client_write_path')
}, 120_000)

afterAll(() => stopAll(clients, server), 60_000)

function newClient(userID: string, over: Parameters<typeof makeClient>[1] = {}): SynchroClient {
  const c = makeClient(server.url, {
    userID,
    clientID: `client-${randomUUID()}`,
    maxRetryAttempts: 0,
    pushDebounce: 3600,
    ...over,
  })
  clients.push(c)
  return c
}

interface Order {
  ship_address: string
  total_cents: number
  deleted: boolean
}

async function serverOrder(id: string): Promise<Order | undefined> {
  const { rows } = await server.db.pool.query<{ ship_address: string; total_cents: string; deleted: boolean }>(
    'SELECT ship_address, total_cents::text, deleted_at IS NOT NULL AS deleted FROM orders WHERE id = $1',
    [id],
  )
  return rows[0] && { ...rows[0], total_cents: Number(rows[0].total_cents) }
}

async function localOrder(c: SynchroClient, id: string): Promise<Order | undefined> {
  const row = await c.queryOne<{ ship_address: string; total_cents: number; deleted: number }>(
    'SELECT ship_address, total_cents, deleted_at IS NOT NULL AS deleted FROM orders WHERE id = ?',
    [id],
  )
  return row ? { ...row, deleted: row.deleted === 1 } : undefined
}

async function insertOrder(c: SynchroClient, user: string, id: string, address: string): Promise<void> {
  await c.execute('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, ?, 1)', [
    id,
    user,
    address,
  ])
}

describe('the write path against a real server', () => {
  it('an undelete of a row whose delete the server confirmed brings the row back on the server', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute('DELETE FROM orders WHERE id = ?', [id])
    await c.syncNow()
    expect(await serverOrder(id)).toMatchObject({ deleted: true })
    // Nothing queued any more: the undelete is the only write the queue knows of.
    await c.execute(`UPDATE orders SET deleted_at = NULL, ship_address = 'restored' WHERE id = ?`, [id])
    await c.syncNow()
    await server.walCaughtUp()
    await c.syncNow()
    expect(await c.rejections()).toEqual([])
    expect(await serverOrder(id)).toEqual({ ship_address: 'restored', total_cents: 1, deleted: false })
    expect(await localOrder(c, id)).toEqual(await serverOrder(id))
  })

  it('a row created, deleted and undeleted before any push reaches the server live', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    const id = randomUUID()
    await c.writeTransaction(async (tx) => {
      await tx.execute('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, ?, 1)', [
        id,
        user,
        'v1',
      ])
      await tx.execute('DELETE FROM orders WHERE id = ?', [id])
      await tx.execute(`UPDATE orders SET deleted_at = NULL, ship_address = 'back' WHERE id = ?`, [id])
    })
    await c.syncNow()
    expect(await c.rejections()).toEqual([])
    expect(await serverOrder(id)).toEqual({ ship_address: 'back', total_cents: 1, deleted: false })
    expect(await localOrder(c, id)).toEqual(await serverOrder(id))
  })

  it('a conflict on a row holding a number a double cannot hold is recorded, and sync goes on', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    const id = randomUUID()
    const meta = '{"pi": 3.14159265358979323846264338327950288}'
    await c.execute('INSERT INTO orders (id, user_id, ship_address, metadata) VALUES (?, ?, ?, ?)', [
      id,
      user,
      'v1',
      meta,
    ])
    await c.syncNow()
    // Another device's newer write (its stamp ahead of anything this client writes next).
    await server.db.pool.query(
      `UPDATE orders SET ship_address = 'server', updated_at = now() + interval '1 hour' WHERE id = $1`,
      [id],
    )
    await c.execute(`UPDATE orders SET ship_address = 'local' WHERE id = ?`, [id])
    await c.syncNow()
    const list = await c.rejections()
    expect(list).toHaveLength(1)
    expect(list[0]).toMatchObject({ status: 'conflict', reasonCode: 'server_won_conflict' })
    // Kept exact (as text, like a bigint), not rounded.
    expect(list[0]!.clientData!.metadata).toEqual({ pi: '3.14159265358979323846264338327950288' })
    expect(list[0]!.serverData!.metadata).toEqual({ pi: '3.14159265358979323846264338327950288' })
    expect(await c.pendingChangeCount()).toBe(0)
    expect(await localOrder(c, id)).toMatchObject({ ship_address: 'server' })
  })
})
