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
/** An order and its detail written before the capture started (an application adopting Synchro has rows already). */
const EARLY_USER = randomUUID()
const EARLY_ORDER = randomUUID()
const EARLY_DETAIL = randomUUID()
const EARLY_ORDER2 = randomUUID()
const EARLY_DETAIL2 = randomUUID()
beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    extraSql: `INSERT INTO orders (id, user_id) VALUES ('${EARLY_ORDER}', '${EARLY_USER}');
               INSERT INTO order_details (id, order_id) VALUES ('${EARLY_DETAIL}', '${EARLY_ORDER}');
               INSERT INTO orders (id, user_id) VALUES ('${EARLY_ORDER2}', '${EARLY_USER}');
               INSERT INTO order_details (id, order_id) VALUES ('${EARLY_DETAIL2}', '${EARLY_ORDER2}');`,
  })
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
async function replica(limit?: number, user = randomUUID()) {
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

/** The capture has given every row written before it started its bucket edges (the backfill is done). */
async function backfilled(): Promise<void> {
  await waitFor(async () => (consumer.status().backfilling.length === 0 ? true : undefined), 20_000, 'edge backfill')
}

/**
 * Forgets the edges of records, as if the backfill had not reached them yet: until it has, the capture's fallbacks
 * for rows without edges are what moves and deletes of them rely on.
 */
async function withoutEdges(...ids: string[]): Promise<void> {
  await backfilled()
  await app.db.pool.query('DELETE FROM sync_bucket_edges WHERE record_id = ANY($1::text[])', [ids])
}

// Rows written before the capture started have no bucket edges until the capture's backfill gives them theirs: the
// snapshot delivers them meanwhile, without a record of the buckets they are in. A move must still reach the bucket
// the row leaves.
describe('a row that predates the capture, before the backfill reached it', () => {
  it('a seeded global category given to a user leaves the other users’ replicas', async () => {
    const id = '00000000-0000-4000-8000-000000000103' // seed row (NULL owner: global)
    await withoutEdges(id)
    const { user, held, pull } = await replica()
    const other = await replica()
    expect(held.has(id)).toBe(true)
    expect(other.held.has(id)).toBe(true)
    await app.db.pool.query('UPDATE categories SET user_id = $2 WHERE id = $1', [id, user])
    await captured(id, 1)
    await caughtUp()
    await pull()
    await other.pull()
    expect(held.has(id)).toBe(true)
    expect(other.held.has(id)).toBe(false) // another user's now: gone from the others' replicas
  })

  it('an order given to another user leaves its old owner’s replica, with its detail', async () => {
    await withoutEdges(EARLY_ORDER, EARLY_DETAIL)
    const old = await replica(undefined, EARLY_USER)
    const next = await replica()
    expect(old.held.has(EARLY_ORDER)).toBe(true)
    expect(old.held.has(EARLY_DETAIL)).toBe(true)
    await app.db.pool.query('UPDATE orders SET user_id = $2 WHERE id = $1', [EARLY_ORDER, next.user])
    await captured(EARLY_ORDER, 1)
    await caughtUp()
    await old.pull()
    await next.pull()
    expect(next.held.has(EARLY_ORDER)).toBe(true)
    expect(next.held.has(EARLY_DETAIL)).toBe(true)
    expect(old.held.has(EARLY_ORDER)).toBe(false)
    expect(old.held.has(EARLY_DETAIL)).toBe(false)
  })

  // The detail's hard delete (ON DELETE CASCADE) falls back to the buckets of its old row, found through its parent —
  // deleted just before in the same transaction: the buckets the parent was in stand in (compute.ts).
  it('a hard delete cascading to a detail without edges reaches the replica', async () => {
    await withoutEdges(EARLY_ORDER2, EARLY_DETAIL2)
    const old = await replica(undefined, EARLY_USER)
    expect(old.held.has(EARLY_DETAIL2)).toBe(true)
    await app.db.pool.query('DELETE FROM orders WHERE id = $1', [EARLY_ORDER2])
    await caughtUp()
    await old.pull()
    expect(old.held.has(EARLY_ORDER2)).toBe(false)
    expect(old.held.has(EARLY_DETAIL2)).toBe(false)
  })
})

describe('a row that predates the capture, given its edges by the backfill', () => {
  // A TRUNCATE names no rows: the capture sends op 3 to the edges it knows of, which the backfill recorded for the
  // rows written before it started.
  it('TRUNCATE reaches the replicas holding seeded rows', async () => {
    const id = '00000000-0000-4000-8000-000000000001' // seed product (global)
    await backfilled()
    const { held, pull } = await replica()
    expect(held.has(id)).toBe(true)
    await app.db.pool.query('TRUNCATE products')
    await caughtUp()
    await pull()
    expect(held.has(id)).toBe(false)
  })
})

/** Waits until the capture has written everything committed so far (a sentinel product's entry). */
async function caughtUp(): Promise<void> {
  const id = randomUUID()
  await app.db.pool.query(`INSERT INTO products (id, name) VALUES ($1, 'sentinel')`, [id])
  await captured(id, 1)
}
