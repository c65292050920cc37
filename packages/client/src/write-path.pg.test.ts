/**
 * The write path against a real server: local writes interleaved with pushes (answers lost, conflicts, deletes and
 * undeletes) end on the server or in `rejections()`, never reverted or overwritten by the client's own older state.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, startSynced, waitFor } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'
import { NetworkError } from './errors.js'
import type { FetchLike } from './sync/transport.js'

let server: PgServer
const clients: SynchroClient[] = []

beforeAll(async () => {
  server = await startPgServer('synchro_client_write_path')
}, 120_000)

afterAll(() => stopAll(clients, server), 60_000)

/** One step per push request, run before it is sent: a local write, or a throw (the network drops it). */
function hookedFetch(): { fetch: FetchLike; beforePush: (() => Promise<unknown>)[]; loseNextPush: () => void } {
  const beforePush: (() => Promise<unknown>)[] = []
  let lose = false
  return {
    beforePush,
    loseNextPush: () => {
      lose = true
    },
    fetch: async (input, init) => {
      const push = String(input).endsWith('/sync/push')
      if (push) await beforePush.shift()?.()
      const res = await fetch(input, init)
      if (push && lose) {
        lose = false
        await res.text()
        throw new TypeError('fetch failed (connection reset after the server answered)')
      }
      return res
    },
  }
}

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

  // The undelete is queued as a create (triggers.ts §): right while the server's row is deleted, but another device
  // may have restored it before this one pulled that. A create of a live row is `record_exists`: the newer write was
  // a conflict the server won. The push now sends it again as the update of the live row it is (LWW applies it).
  it('an undelete made after another device restored the row (not pulled yet) is applied, not a conflict', async () => {
    const user = randomUUID()
    const c = newClient(user)
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute('DELETE FROM orders WHERE id = ?', [id])
    await c.syncNow()
    // Another device restores the row; this device has not pulled that yet.
    await server.db.pool.query(
      `UPDATE orders SET deleted_at = NULL, ship_address = 'other device', updated_at = now()
        WHERE id = $1`,
      [id],
    )
    await c.execute(`UPDATE orders SET deleted_at = NULL, ship_address = 'restored here' WHERE id = ?`, [id])
    await c.syncNow()
    await server.walCaughtUp()
    await c.syncNow()
    expect(await c.rejections()).toEqual([])
    expect(await serverOrder(id)).toEqual({ ship_address: 'restored here', total_cents: 1, deleted: false })
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

  it('an update whose answer was lost is not a conflict with itself when pushed again', async () => {
    const user = randomUUID()
    const net = hookedFetch()
    const c = newClient(user, { fetch: net.fetch })
    const conflicts: unknown[] = []
    c.onConflict((e) => conflicts.push(e))
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    net.loseNextPush()
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    expect(await serverOrder(id)).toMatchObject({ ship_address: 'v2' })
    await c.syncNow()
    await server.walCaughtUp()
    await c.syncNow()
    expect(conflicts).toEqual([])
    expect(await c.rejections()).toEqual([])
    await expect(c.confirmed('orders', id)).resolves.toBeUndefined()
    expect(await localOrder(c, id)).toEqual(await serverOrder(id))
  })

  it('a write made while an update is in flight survives the loss of its answer', async () => {
    const user = randomUUID()
    const net = hookedFetch()
    const c = newClient(user, { fetch: net.fetch })
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    // Written after the request was read from the queue, before the server applied it; then the answer is lost.
    net.beforePush.push(() => c.execute('UPDATE orders SET total_cents = 5 WHERE id = ?', [id]))
    net.loseNextPush()
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    expect(await serverOrder(id)).toMatchObject({ ship_address: 'v2', total_cents: 1 })
    await c.syncNow()
    await server.walCaughtUp()
    await c.syncNow()
    expect(await c.rejections()).toEqual([])
    expect(await serverOrder(id)).toEqual({ ship_address: 'v2', total_cents: 5, deleted: false })
    expect(await localOrder(c, id)).toEqual(await serverOrder(id))
  })

  it('an update pushed by a client closed before the answer came is not a conflict for the reopened client', async () => {
    const user = randomUUID()
    // The server applies the push; its answer never reaches the app, which is closed meanwhile (the request aborted).
    let hang = false
    const hanging: FetchLike = async (input, init) => {
      const res = await fetch(input, init)
      if (!hang || !String(input).endsWith('/sync/push')) return res
      await res.text()
      return new Promise<Response>((_resolve, reject) =>
        init?.signal?.addEventListener('abort', () => reject(new TypeError('fetch failed (aborted)'))),
      )
    }
    const c = newClient(user, { fetch: hanging })
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    hang = true
    const pushed = c.syncNow().catch(() => {})
    await waitFor(async () => (await serverOrder(id))?.ship_address === 'v2', 5000, 'the push applied')
    await c.close()
    await pushed
    const c2 = newClient(user, { dbPath: c.getPath()! })
    const conflicts: unknown[] = []
    c2.onConflict((e) => conflicts.push(e))
    await startSynced(c2)
    await c2.execute('UPDATE orders SET total_cents = 7 WHERE id = ?', [id])
    await c2.syncNow()
    expect(conflicts).toEqual([])
    expect(await c2.rejections()).toEqual([])
    expect(await serverOrder(id)).toEqual({ ship_address: 'v2', total_cents: 7, deleted: false })
    expect(await localOrder(c2, id)).toEqual(await serverOrder(id))
  })

  it("another device's write after an update whose answer was lost is still a conflict the server wins", async () => {
    const user = randomUUID()
    const net = hookedFetch()
    const c = newClient(user, { fetch: net.fetch })
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    net.loseNextPush()
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    // Newer than anything this client writes: the server keeps it.
    await server.db.pool.query(
      `UPDATE orders SET ship_address = 'other device', updated_at = now() + interval '1 hour' WHERE id = $1`,
      [id],
    )
    await c.syncNow()
    expect(await c.rejections()).toMatchObject([{ status: 'conflict', reasonCode: 'server_won_conflict' }])
    expect(await serverOrder(id)).toMatchObject({ ship_address: 'other device' })
    expect(await localOrder(c, id)).toEqual(await serverOrder(id))
  })

  it('a conflict the server won while the app wrote another column: the server keeps its value, the write goes on', async () => {
    const user = randomUUID()
    const net = hookedFetch()
    const c = newClient(user, { fetch: net.fetch })
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    // Another device's newer address (its stamp ahead of anything this client writes next).
    await server.db.pool.query(
      `UPDATE orders SET ship_address = 'other device', updated_at = now() + interval '1 hour' WHERE id = $1`,
      [id],
    )
    await c.execute(`UPDATE orders SET ship_address = 'mine' WHERE id = ?`, [id])
    // While that push is in flight the app changes another column only.
    net.beforePush.push(() => c.execute('UPDATE orders SET total_cents = 9 WHERE id = ?', [id]))
    await c.syncNow()
    await server.walCaughtUp()
    await c.syncNow()
    expect(await c.rejections()).toMatchObject([{ status: 'conflict', reasonCode: 'server_won_conflict' }])
    // The address the server kept stays; the app's later write of the other column is applied.
    expect(await serverOrder(id)).toEqual({ ship_address: 'other device', total_cents: 9, deleted: false })
    expect(await localOrder(c, id)).toEqual(await serverOrder(id))
  })

  it('a write made while a rebuild downloads the data again is not lost', async () => {
    const user = randomUUID()
    const beforeSnapshot: (() => Promise<unknown>)[] = []
    const hooked: FetchLike = async (input, init) => {
      if (String(input).endsWith('/sync/snapshot')) await beforeSnapshot.shift()?.()
      return fetch(input, init)
    }
    const c = newClient(user, { fetch: hooked })
    await startSynced(c)
    const [id, gone] = [randomUUID(), randomUUID()]
    await insertOrder(c, user, id, 'v1')
    await insertOrder(c, user, gone, 'v1')
    await c.syncNow()
    // Gone from the server without a change this client pulls: the rebuild removes it, once it has the data.
    await server.db.pool.query('DELETE FROM orders WHERE id = $1', [gone])
    // A write to a read-only table is rejected without the server's row: the data is downloaded again (refetch).
    await c.execute(`UPDATE products SET name = 'mine' WHERE id = '00000000-0000-4000-8000-000000000001'`)
    let affected = -1
    let during: unknown[] = []
    beforeSnapshot.push(async () => {
      during = await c.query('SELECT id FROM orders ORDER BY id')
      affected = (await c.execute(`UPDATE orders SET ship_address = 'edited during rebuild' WHERE id = ?`, [id]))
        .rowsAffected
    })
    await c.syncNow()
    expect(during).toEqual([{ id }, { id: gone }].sort((a, b) => (a.id < b.id ? -1 : 1)))
    expect(await c.query('SELECT id FROM orders')).toEqual([{ id }])
    await server.walCaughtUp()
    await c.syncNow()
    expect((await c.rejections()).map((r) => r.resolution)).toEqual(['refetch'])
    expect(affected).toBe(1)
    expect(await serverOrder(id)).toMatchObject({ ship_address: 'edited during rebuild' })
    expect(await localOrder(c, id)).toEqual(await serverOrder(id))
  })

  describe('a write made while a push of the same row is in flight ends on the server', () => {
    const upsert = `INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, 're', 7)
      ON CONFLICT (id) DO UPDATE SET deleted_at = NULL, ship_address = excluded.ship_address,
        total_cents = excluded.total_cents`
    type Step = (c: SynchroClient, user: string, id: string) => Promise<unknown>
    const pushed: [string, Step][] = [
      ['create', (c, user, id) => insertOrder(c, user, id, 'v1')],
      ['update', (c, _user, id) => c.execute(`UPDATE orders SET ship_address = 'a' WHERE id = ?`, [id])],
      ['delete', (c, _user, id) => c.execute('DELETE FROM orders WHERE id = ?', [id])],
    ]
    const during: [string, Step][] = [
      ['same column', (c, _user, id) => c.execute(`UPDATE orders SET ship_address = 'during' WHERE id = ?`, [id])],
      ['other column', (c, _user, id) => c.execute('UPDATE orders SET total_cents = 42 WHERE id = ?', [id])],
      ['delete', (c, _user, id) => c.execute('DELETE FROM orders WHERE id = ?', [id])],
      [
        'undelete',
        (c, _user, id) => c.execute(`UPDATE orders SET deleted_at = NULL, ship_address = 'back' WHERE id = ?`, [id]),
      ],
      [
        'delete and re-create',
        async (c, user, id) => {
          await c.execute('DELETE FROM orders WHERE id = ?', [id])
          await c.execute(upsert, [id, user])
        },
      ],
    ]
    for (const [op, push] of pushed) {
      for (const [what, write] of during) {
        it(`${op} in flight, then ${what}`, async () => {
          const user = randomUUID()
          const net = hookedFetch()
          const c = newClient(user, { fetch: net.fetch })
          await startSynced(c)
          const id = randomUUID()
          if (op !== 'create') {
            await insertOrder(c, user, id, 'v1')
            await c.syncNow()
          }
          await push(c, user, id)
          let intended: Order | undefined
          net.beforePush.push(async () => {
            await write(c, user, id)
            intended = await localOrder(c, id)
          })
          await c.syncNow()
          expect(intended).toBeDefined()
          await c.syncNow()
          await server.walCaughtUp()
          await c.syncNow()
          expect(await c.rejections()).toEqual([])
          expect(await c.pendingChangeCount()).toBe(0)
          // An edit of a row that is still deleted is not pushed (a tombstone's columns do not matter).
          const shown = (o: Order | undefined) => (o?.deleted ? { deleted: true } : o)
          expect(shown(await localOrder(c, id))).toEqual(shown(intended))
          expect(shown(await serverOrder(id))).toEqual(shown(intended))
        })
      }
    }
  })

  it('a pulled delete does not delete again a row the app restored meanwhile', async () => {
    const user = randomUUID()
    const beforePull: (() => Promise<unknown>)[] = []
    const hooked: FetchLike = async (input, init) => {
      if (String(input).endsWith('/sync/pull')) await beforePull.shift()?.()
      return fetch(input, init)
    }
    const c = newClient(user, { fetch: hooked })
    await startSynced(c)
    const id = randomUUID()
    await insertOrder(c, user, id, 'v1')
    await c.syncNow()
    await c.execute('DELETE FROM orders WHERE id = ?', [id])
    // The delete is applied; the pull that would bring its changelog entry back fails.
    beforePull.push(() => Promise.reject(new TypeError('fetch failed (offline)')))
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    // The next pull brings that delete; the app restores the row just before it arrives.
    beforePull.push(async () => {
      await server.walCaughtUp()
      await c.execute(`UPDATE orders SET deleted_at = NULL, ship_address = 'back' WHERE id = ?`, [id])
    })
    await c.syncNow()
    expect(await localOrder(c, id)).toEqual({ ship_address: 'back', total_cents: 1, deleted: false })
    await c.syncNow()
    await server.walCaughtUp()
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
