import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startWalConsumer, type WalConsumer } from '../wal/index.js'

// A record that moves between two buckets one client subscribes to (a global category given to a user, a user's
// category made global: `user:U` and `global` are both default subscriptions) is written as op 1 in the bucket it
// enters, then op 3 in the bucket it leaves. The client must keep it: it is still in one of its buckets.
let app: TestApp
let consumer: WalConsumer
beforeAll(async () => {
  app = await createTestApp({ seed: true })
  consumer = startWalConsumer({
    pool: app.db.pool,
    registry: app.engine.ctx.registry,
    replicationUrl: app.db.url,
    slotName: app.db.name,
    statusIntervalMs: 200,
    leaderRetryMs: 100,
  })
  await waitFor(async () => (consumer.status().running ? true : undefined), 20_000, 'consumer running')
})
afterAll(async () => {
  await consumer?.stop()
  await app?.close()
})

/** Waits until `n` changelog entries of record `id` are written. */
async function captured(id: string, n: number): Promise<void> {
  const count = async () =>
    (await app.db.pool.query('SELECT count(*)::int AS n FROM sync_changelog WHERE record_id = $1', [id])).rows[0].n
  await waitFor(async () => ((await count()) >= n ? true : undefined), 20_000, `changelog of ${id}`)
}

/** A client of a new user, snapshotted, and a replica that applies its pulls (page by page, `limit` entries a page). */
async function replica(limit?: number) {
  const user = randomUUID()
  const reg = await app.registerClient(user)
  const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
  const held = new Set<string>()
  let checkpoint = 0
  let cursor: unknown
  for (;;) {
    const r = await app.call('POST', '/sync/snapshot', { user, body: { ...pair, cursor } })
    expect(r.status).toBe(200)
    for (const x of r.body.records) held.add(x.id)
    checkpoint = r.body.checkpoint
    if (!r.body.has_more) break
    cursor = r.body.cursor
  }
  const pull = async () => {
    for (;;) {
      const body = { ...pair, checkpoint, limit }
      const r = await app.call('POST', '/sync/pull', { user, body })
      expect(r.status).toBe(200)
      for (const c of r.body.changes) held.add(c.id)
      for (const d of r.body.deletes) held.delete(d.id)
      checkpoint = r.body.checkpoint
      if (!r.body.has_more) return
    }
  }
  return { user, held, pull }
}

describe('a record moving between two buckets one client subscribes to', () => {
  it('a global category given to the user stays on its replica (not pulled as a delete)', async () => {
    const { user, held, pull } = await replica()
    const other = await replica()
    const id = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, NULL, 'shared')`, [id])
    await captured(id, 1)
    await pull()
    await other.pull()
    expect(held.has(id)).toBe(true)
    expect(other.held.has(id)).toBe(true)
    await app.db.pool.query('UPDATE categories SET user_id = $2 WHERE id = $1', [id, user])
    await captured(id, 3) // op 1 in user:U, then op 3 in global
    await pull()
    await other.pull()
    expect(held.has(id)).toBe(true)
    expect(other.held.has(id)).toBe(false) // another user's now: gone from the others' replicas
  })

  it('the user’s own category made global stays on its replica, pulled one entry a page', async () => {
    const { user, held, pull } = await replica(1)
    const id = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'mine')`, [id, user])
    await captured(id, 1)
    await pull()
    expect(held.has(id)).toBe(true)
    await app.db.pool.query('UPDATE categories SET user_id = NULL WHERE id = $1', [id])
    await captured(id, 3) // op 1 in global, then op 3 in user:U
    await pull()
    expect(held.has(id)).toBe(true)
    // Then soft-deleted: now it leaves every bucket, and the replica drops it.
    await app.db.pool.query('UPDATE categories SET deleted_at = now() WHERE id = $1', [id])
    await captured(id, 4)
    await pull()
    expect(held.has(id)).toBe(false)
  })

  it('a live frame of a range stands for that range only: a move committed after it is not read as a delete', async () => {
    const { user } = await replica()
    const head = async () =>
      Number((await app.db.pool.query('SELECT coalesce(max(seq), 0)::text AS s FROM sync_changelog')).rows[0].s)
    const x = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, NULL, 'x')`, [x])
    await captured(x, 1)
    const prev = await head()
    const y = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, NULL, 'y')`, [y])
    await captured(y, 1)
    const to = await head() // the range (prev, to] touched `global` only
    // Before that range is rendered, X moves from `global` to the user's bucket: op 1 there, op 3 in `global`.
    await app.db.pool.query('UPDATE categories SET user_id = $2 WHERE id = $1', [x, user])
    await captured(x, 3)
    const body = await app.engine.liveFrame(user, ['global'], prev, to)
    expect(body).toBeDefined()
    const frame = JSON.parse(`{${new TextDecoder().decode(body).trim()}`)
    expect(frame.to).toBe(to)
    expect(frame.changes.map((c: { id: string }) => c.id)).toEqual([y])
    expect(frame.deletes).toEqual([])
  })
})
