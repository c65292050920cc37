import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { readChangelog, setupNorthwind, waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Registry } from '../registry/registry.js'
import { startWalConsumer, type WalConsumer } from './index.js'

// Rows written before the capture started (before the slot existed, or before their table was registered) are given
// their bucket edges by the capture's backfill: without them a TRUNCATE, or a delete whose buckets can no longer be
// computed, leaves those rows on the devices that took them by snapshot.

let db: TestDatabase
let consumer: WalConsumer | undefined
const errors: Error[] = []
const U = randomUUID()
const V = randomUUID()
const ORDER = randomUUID()
const DETAILS = Array.from({ length: 6 }, () => randomUUID())
const NOTE = randomUUID()
const GONE_ORDER = randomUUID() // soft-deleted
const PRODUCT = randomUUID()
const ITEM = randomUUID()
const ITEM_NOTE = randomUUID()
let docA = ''
let docNull = ''
const TAGGED = randomUUID()
const BOOM = randomUUID()

beforeAll(async () => {
  db = await createTestDatabase()
  await setupNorthwind(db.pool)
  await q('INSERT INTO orders (id, user_id) VALUES ($1, $2)', [ORDER, U])
  await q('INSERT INTO orders (id, user_id, deleted_at) VALUES ($1, $2, now())', [GONE_ORDER, U])
  for (const d of DETAILS) await q('INSERT INTO order_details (id, order_id) VALUES ($1, $2)', [d, ORDER])
  await q('INSERT INTO detail_notes (id, detail_id) VALUES ($1, $2)', [NOTE, DETAILS[0]])
  await q(`INSERT INTO products (id, name) VALUES ($1, 'old')`, [PRODUCT])
  await q('INSERT INTO app.items (id, owner_id) VALUES ($1, $2)', [ITEM, V])
  await q('INSERT INTO app.item_notes (id, item_id) VALUES ($1, $2)', [ITEM_NOTE, ITEM])
  docA = String((await q(`INSERT INTO docs (tag) VALUES ('a') RETURNING id`)).rows[0].id)
  docNull = String((await q('INSERT INTO docs (tag) VALUES (NULL) RETURNING id')).rows[0].id)
  await q(`INSERT INTO tagged (id, team, extra) VALUES ($1, 'x', '{"buckets": ["p"]}')`, [TAGGED])
  await q(`INSERT INTO tagged (id, team) VALUES ($1, 'boom')`, [BOOM])
  // The first capture has no categories: their rows are written while the table is not registered.
  consumer = await start(registry(false))
})

afterAll(async () => {
  await consumer?.stop()
  await db?.drop()
})

const q = (text: string, params: unknown[] = []) => db.pool.query(text, params)

/** The Northwind registry, with or without `categories`. */
function registry(categories: boolean): Registry {
  const r = new Registry()
    .register({ tableName: 'orders', ownerColumn: 'user_id' })
    .register({ tableName: 'order_details', parentTable: 'orders', parentFkColumn: 'order_id' })
    .register({ tableName: 'products', pushPolicy: 'disabled' })
  if (categories) r.register({ tableName: 'categories', ownerColumn: 'user_id', allowGlobalRead: true })
  r.register({ tableName: 'detail_notes', parentTable: 'order_details', parentFkColumn: 'detail_id' })
    .register({ tableName: 'app.items', ownerColumn: 'owner_id' })
    .register({ tableName: 'app.item_notes', parentTable: 'app.items', parentFkColumn: 'item_id' })
    .register({ tableName: 'docs', pushPolicy: 'disabled', bucketByColumn: 'tag', bucketPrefix: 'tag:' })
    .register({ tableName: 'tagged', pushPolicy: 'disabled', bucketFunction: 'tagged_buckets' })
  r.validate()
  return r
}

/** A consumer whose batches (and backfill chunks) are 3 changes (keys): big transactions are written in parts. */
async function start(reg: Registry): Promise<WalConsumer> {
  const c = startWalConsumer({
    pool: db.pool,
    registry: reg,
    replicationUrl: db.url,
    slotName: db.name,
    statusIntervalMs: 200,
    leaderRetryMs: 100,
    batchMaxEvents: 3,
    onError: (e) => errors.push(e),
  })
  await waitFor(async () => (c.status().running ? true : undefined), 20_000, 'consumer running')
  return c
}

async function backfilled(c: WalConsumer): Promise<void> {
  await waitFor(async () => (c.status().backfilling.length === 0 ? true : undefined), 20_000, 'edge backfill')
}

/** Waits until everything committed so far is in the changelog (a marker product's entry). */
async function settle(): Promise<void> {
  const id = randomUUID()
  await q(`INSERT INTO products (id, name) VALUES ($1, 'marker')`, [id])
  await waitFor(async () => ((await readChangelog(db.pool, id)).length > 0 ? true : undefined), 20_000, 'marker')
}

async function edges(id: string): Promise<string[]> {
  const { rows } = await q('SELECT bucket_id FROM sync_bucket_edges WHERE record_id = $1 ORDER BY bucket_id', [id])
  return rows.map((r) => r.bucket_id as string)
}

async function ops(id: string): Promise<string[]> {
  return (await readChangelog(db.pool, id)).map((e) => `${e.bucket} ${e.op}`).sort()
}

describe('rows written before the capture started', () => {
  it('get the edges the capture computes for them, by every bucket rule, and no changelog entries', async () => {
    await backfilled(consumer as WalConsumer)
    expect(await edges(ORDER)).toEqual([`user:${U}`])
    for (const d of DETAILS) expect(await edges(d)).toEqual([`user:${U}`]) // parent chain
    expect(await edges(NOTE)).toEqual([`user:${U}`]) // grandchild
    expect(await edges(GONE_ORDER)).toEqual([]) // soft-deleted: in no bucket
    expect(await edges(PRODUCT)).toEqual(['global'])
    expect(await edges(ITEM)).toEqual([`user:${V}`]) // schema-qualified
    expect(await edges(ITEM_NOTE)).toEqual([`user:${V}`])
    expect(await edges(docA)).toEqual(['tag:a'])
    expect(await edges(docNull)).toEqual([]) // NULL bucket column: no bucket
    expect(await edges(TAGGED)).toEqual(['p', 'team:x']) // bucket function
    expect(await edges(BOOM)).toEqual([]) // the function raises: no edges, as the capture would leave it
    const { rows } = await q('SELECT count(*)::int AS n FROM sync_changelog')
    expect(rows[0].n).toBe(0)
    const failures = await q('SELECT count(*)::int AS n FROM sync_rule_failures')
    expect(failures.rows[0].n).toBe(0)
    const progress = await q('SELECT bool_and(done) AS done, count(*)::int AS n FROM sync_edge_backfill')
    expect(progress.rows[0]).toEqual({ done: true, n: 8 })
  })

  it('a TRUNCATE sends op 3 for them', async () => {
    await q('TRUNCATE docs, tagged')
    await settle()
    expect(await ops(docA)).toEqual(['tag:a 3'])
    expect(await ops(TAGGED)).toEqual(['p 3', 'team:x 3'])
    expect(await ops(docNull)).toEqual([])
  })

  it('a hard delete cascading over the parts of a big transaction sends op 3 for every child', async () => {
    // Order, 6 details and a note: one transaction of 8 changes, written in parts of 3. The details of later parts
    // cannot find their (deleted) order; their edges say where they were.
    await q('DELETE FROM orders WHERE id = $1', [ORDER])
    await settle()
    expect(await ops(ORDER)).toEqual([`user:${U} 3`])
    for (const d of DETAILS) expect(await ops(d)).toEqual([`user:${U} 3`])
    expect(await ops(NOTE)).toEqual([`user:${U} 3`])
    const failures = await q('SELECT count(*)::int AS n FROM sync_rule_failures')
    expect(failures.rows[0].n).toBe(0)
  })
})

describe('a table registered later', () => {
  it('gets edges for the rows written before, and again after a session that did not capture it', async () => {
    const shared = randomUUID()
    const mine = randomUUID()
    await q(`INSERT INTO categories (id, user_id, name) VALUES ($1, NULL, 'shared'), ($2, $3, 'mine')`, [
      shared,
      mine,
      U,
    ])
    await settle()
    await consumer?.stop()
    consumer = await start(registry(true))
    await backfilled(consumer)
    expect(await edges(shared)).toEqual(['global'])
    expect(await edges(mine)).toEqual([`user:${U}`])

    // Unregistered for a session, its rows changed meanwhile are not captured: registered again, they get edges.
    await consumer.stop()
    consumer = await start(registry(false))
    const later = randomUUID()
    await q(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'later')`, [later, V])
    await settle()
    await consumer.stop()
    consumer = await start(registry(true))
    await backfilled(consumer)
    expect(await edges(later)).toEqual([`user:${V}`])

    await q('TRUNCATE categories')
    await settle()
    expect(await ops(shared)).toEqual(['global 3'])
    expect(await ops(mine)).toEqual([`user:${U} 3`])
    expect(await ops(later)).toEqual([`user:${V} 3`])
    expect(errors).toEqual([])
  })
})
