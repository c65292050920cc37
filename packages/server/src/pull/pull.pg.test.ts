import { randomUUID } from 'node:crypto'
import { createAppRolePool, createTestApp, NORTHWIND_TABLES, type TestApp } from '@synchro/test-harness'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bucketUpdates } from './pull.js'

let app: TestApp
const snapshotRequiredEvents: { clientId: string; reason: string }[] = []
const pullCompleteEvents: { clientId: string; checkpoint: number; changes: number; deletes: number }[] = []

beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    engine: {
      hooks: {
        onSnapshotRequired: (e) => snapshotRequiredEvents.push({ clientId: e.clientId, reason: e.reason }),
        onPullComplete: (e) => pullCompleteEvents.push(e),
      },
    },
  })
})
afterAll(async () => {
  await app.close()
})

// ---- helpers -------------------------------------------------------------------------------------------------

type Op = 1 | 2 | 3

/** entry(bucket, table, id, op): a changelog row written straight into sync_changelog (simulated WAL). */
async function entry(bucket: string, table: string, id: string, op: Op, db: pg.Pool = app.db.pool): Promise<number> {
  const { rows } = await db.query<{ seq: string }>(
    `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, $2, $3, $4) RETURNING seq::text`,
    [bucket, table, id, op],
  )
  return Number(rows[0]?.seq)
}

async function maxSeq(): Promise<number> {
  const { rows } = await app.db.pool.query(`SELECT coalesce(max(seq), 0)::text AS s FROM sync_changelog`)
  return Number(rows[0].s)
}

async function insertOrder(user: string, extra: Record<string, unknown> = {}): Promise<string> {
  const id = randomUUID()
  const cols = ['id', 'user_id', ...Object.keys(extra)]
  const vals = [id, user, ...Object.values(extra)]
  await app.db.pool.query(
    `INSERT INTO orders (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
    vals,
  )
  return id
}

interface Client {
  user: string
  clientId: string
  version: number
  hash: string
  pull(body?: Record<string, unknown>): Promise<{ status: number; body: any }>
  row(): Promise<{ last_pull_seq: string | null; last_pull_at: string | null; last_sync_at: string | null }>
}

/** A registered client; `bootstrapped` marks a completed snapshot (stored checkpoint 0 → pulls are served). */
async function client(opts: { user?: string; bootstrapped?: boolean; on?: TestApp } = {}): Promise<Client> {
  const on = opts.on ?? app
  const user = opts.user ?? randomUUID()
  const reg = await on.registerClient(user)
  if (opts.bootstrapped !== false) {
    await on.db.pool.query(`UPDATE sync_clients SET last_pull_seq = 0 WHERE user_id = $1 AND client_id = $2`, [
      user,
      reg.clientId,
    ])
  }
  return {
    user,
    clientId: reg.clientId,
    version: reg.version,
    hash: reg.hash,
    pull: (body = {}) =>
      on.call('POST', '/sync/pull', {
        user,
        body: { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, checkpoint: 0, ...body },
      }),
    row: async () => {
      const { rows } = await on.db.pool.query(
        `SELECT last_pull_seq::text, last_pull_at::text, last_sync_at::text FROM sync_clients WHERE user_id = $1 AND client_id = $2`,
        [user, reg.clientId],
      )
      return rows[0]
    },
  }
}

const ids = (recs: { id: string }[]) => recs.map((r) => r.id).sort()

// ---- §3 D ----------------------------------------------------------------------------------------------------

describe('§3 D pull', () => {
  it('32 never-snapshotted client at checkpoint 0 → initial_sync_required without side effects; normal after a snapshot', async () => {
    const c = await client({ bootstrapped: false })
    const r = await c.pull()
    expect(r.status).toBe(200)
    expect(r.body).toEqual({
      changes: [],
      deletes: [],
      checkpoint: 0,
      has_more: false,
      snapshot_required: true,
      snapshot_reason: 'initial_sync_required',
      schema_version: c.version,
      schema_hash: c.hash,
    })
    expect(await c.row()).toEqual({ last_pull_seq: null, last_pull_at: null, last_sync_at: null })
    expect(snapshotRequiredEvents).toContainEqual({ clientId: c.clientId, reason: 'initial_sync_required' })

    let cursor: unknown
    for (let i = 0; i < 20; i++) {
      const s = await app.call('POST', '/sync/snapshot', {
        user: c.user,
        body: { client_id: c.clientId, schema_version: c.version, schema_hash: c.hash, cursor, limit: 1000 },
      })
      expect(s.status).toBe(200)
      cursor = s.body.cursor
      if (!s.body.has_more) break
    }
    const again = await c.pull()
    expect(again.status).toBe(200)
    expect(again.body).not.toHaveProperty('snapshot_required')
    expect(again.body).not.toHaveProperty('snapshot_reason')
  })

  it('33 unregistered client_id → 404 client not registered', async () => {
    const c = await client()
    const r = await app.call('POST', '/sync/pull', {
      user: c.user,
      body: { client_id: 'never-registered', schema_version: c.version, schema_hash: c.hash, checkpoint: 0 },
    })
    expect(r.status).toBe(404)
    expect(r.body).toEqual({ error: 'client not registered' })
  })

  it('34 wrong schema pair → 409; the bootstrap pair (0,"") → 409', async () => {
    const c = await client()
    for (const [v, h] of [
      [c.version + 1, c.hash],
      [c.version, 'f'.repeat(64)],
      [0, ''],
    ] as const) {
      const r = await c.pull({ schema_version: v, schema_hash: h })
      expect(r.status).toBe(409)
      expect(r.body).toMatchObject({ code: 'schema_mismatch', server_schema_version: c.version })
    }
  })

  it('35 op 1 → one change with the full row as PostgreSQL renders it; checkpoint = the entry seq', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user, {
      status: 'shipped',
      required_date: '2026-03-01',
      preferred_ship_time: '10:30:00',
      ship_address: 'Main St 1',
      metadata: JSON.stringify({ a: [1, 2], b: { c: true } }),
      total_cents: 9_007_199_254_740_991,
    })
    const seq = await entry(`user:${c.user}`, 'orders', o, 1)
    const r = await c.pull({ checkpoint: from })
    expect(r.status).toBe(200)
    expect(r.body.checkpoint).toBe(seq)
    expect(r.body.has_more).toBe(false)
    expect(r.body.deletes).toEqual([])
    expect(r.body.changes).toHaveLength(1)
    const ch = r.body.changes[0]
    const { rows } = await app.db.pool.query(
      `SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS u, to_json(created_at) #>> '{}' AS created
         FROM orders WHERE id = $1`,
      [o],
    )
    expect(ch.id).toBe(o)
    expect(ch.table_name).toBe('orders')
    expect(ch.updated_at).toBe(rows[0].u.replace(/\.?0+Z$/, 'Z'))
    expect(ch).not.toHaveProperty('deleted_at')
    expect(Object.keys(ch.data).sort()).toEqual(
      [
        'id',
        'user_id',
        'status',
        'order_date',
        'required_date',
        'preferred_ship_time',
        'ship_address',
        'metadata',
        'total_cents',
        'created_at',
        'updated_at',
        'deleted_at',
      ].sort(),
    )
    expect(ch.data).toMatchObject({
      id: o,
      user_id: c.user,
      status: 'shipped',
      required_date: '2026-03-01',
      preferred_ship_time: '10:30:00',
      ship_address: 'Main St 1',
      metadata: { a: [1, 2], b: { c: true } },
      total_cents: 9_007_199_254_740_991,
      deleted_at: null,
      created_at: rows[0].created,
    })
    // §1.6: timestamps inside data keep µs and carry an offset.
    expect(ch.data.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}:\d{2}$/)
    expect(pullCompleteEvents).toContainEqual({
      userId: c.user,
      clientId: c.clientId,
      checkpoint: seq,
      changes: 1,
      deletes: 0,
    })
  })

  it('35 §1.6 rendering of global rows: numeric as number, bytea as hex text, text[] as JSON array', async () => {
    const c = await client()
    const from = await maxSeq()
    const p = '00000000-0000-4000-8000-000000000001'
    await app.db.pool.query(`UPDATE products SET thumbnail = '\\x0102ff'::bytea WHERE id = $1`, [p])
    await entry('global', 'products', p, 2)
    await entry('global', 'categories', '00000000-0000-4000-8000-000000000101', 2)
    const r = await c.pull({ checkpoint: from })
    const prod = r.body.changes.find((x: any) => x.table_name === 'products')
    const cat = r.body.changes.find((x: any) => x.table_name === 'categories')
    expect(prod.data).toMatchObject({ name: 'Widget A', unit_price: 9.99, units_in_stock: 100, discontinued: false })
    expect(prod.data.thumbnail).toBe('\\x0102ff')
    expect(cat.data.search_tags).toEqual(['tech', 'gadgets'])
    expect(cat.data.user_id).toBeNull()
  })

  it('36 op 2 → change; op 3 → delete entry {id, table_name} only', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    await entry(`user:${c.user}`, 'orders', o, 2)
    const r1 = await c.pull({ checkpoint: from })
    expect(ids(r1.body.changes)).toEqual([o])
    await entry(`user:${c.user}`, 'orders', o, 3)
    const r2 = await c.pull({ checkpoint: r1.body.checkpoint })
    expect(r2.body.changes).toEqual([])
    expect(r2.body.deletes).toEqual([{ id: o, table_name: 'orders' }])
  })

  it('37 dedup inside a page keeps the last op per record', async () => {
    const c = await client()
    const from = await maxSeq()
    const x = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'mine')`, [x, c.user])
    const o = await insertOrder(c.user)
    const o2 = await insertOrder(c.user)
    await entry(`user:${c.user}`, 'categories', x, 1)
    await entry(`user:${c.user}`, 'orders', o, 2)
    await entry(`user:${c.user}`, 'orders', o, 3)
    for (let i = 0; i < 4; i++) await entry(`user:${c.user}`, 'orders', o2, 2)
    // delete then re-create: the last op (create) wins
    const o3 = await insertOrder(c.user)
    await entry(`user:${c.user}`, 'orders', o3, 3)
    await entry(`user:${c.user}`, 'orders', o3, 1)
    const r = await c.pull({ checkpoint: from })
    expect(ids(r.body.changes)).toEqual([x, o2, o3].sort())
    expect(r.body.deletes).toEqual([{ id: o, table_name: 'orders' }])
  })

  it('37b changes come in changelog order (a deduplicated record at its last entry), not in (table, id) order', async () => {
    const c = await client()
    const from = await maxSeq()
    const orders = [await insertOrder(c.user), await insertOrder(c.user), await insertOrder(c.user)].sort().reverse()
    const x = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'mine')`, [x, c.user])
    const [o1, o2, o3] = orders as [string, string, string]
    await entry(`user:${c.user}`, 'orders', o3, 1)
    await entry(`user:${c.user}`, 'orders', o1, 1)
    await entry(`user:${c.user}`, 'categories', x, 1)
    await entry(`user:${c.user}`, 'orders', o2, 1)
    await entry(`user:${c.user}`, 'orders', o3, 2)
    const r = await c.pull({ checkpoint: from })
    expect(r.body.changes.map((ch: { id: string }) => ch.id)).toEqual([o1, x, o2, o3])
  })

  it('38 bucket isolation: A gets only A’s records', async () => {
    const a = await client()
    const b = await client()
    const from = await maxSeq()
    const oa = await insertOrder(a.user)
    const ob = await insertOrder(b.user)
    await entry(`user:${a.user}`, 'orders', oa, 1)
    await entry(`user:${b.user}`, 'orders', ob, 1)
    expect(ids((await a.pull({ checkpoint: from })).body.changes)).toEqual([oa])
    expect(ids((await b.pull({ checkpoint: from })).body.changes)).toEqual([ob])
  })

  it('39 an entry in bucket global reaches every user', async () => {
    const a = await client()
    const b = await client()
    const from = await maxSeq()
    await entry('global', 'products', '00000000-0000-4000-8000-000000000002', 2)
    for (const c of [a, b]) {
      const r = await c.pull({ checkpoint: from })
      expect(ids(r.body.changes)).toEqual(['00000000-0000-4000-8000-000000000002'])
    }
  })

  it('40 limit 2 over 5 entries → pages 2, 2, 1; exactly-limit → has_more false', async () => {
    const c = await client()
    const from = await maxSeq()
    const orders: string[] = []
    for (let i = 0; i < 5; i++) {
      const o = await insertOrder(c.user)
      orders.push(o)
      await entry(`user:${c.user}`, 'orders', o, 1)
    }
    const seen: string[] = []
    let cp = from
    const sizes: number[] = []
    const more: boolean[] = []
    for (;;) {
      const r = await c.pull({ checkpoint: cp, limit: 2 })
      expect(r.body.checkpoint).toBeGreaterThan(cp)
      cp = r.body.checkpoint
      sizes.push(r.body.changes.length)
      more.push(r.body.has_more)
      seen.push(...ids(r.body.changes))
      if (!r.body.has_more) break
    }
    expect(sizes).toEqual([2, 2, 1])
    expect(more).toEqual([true, true, false])
    expect(seen.sort()).toEqual([...orders].sort())
    const exact = await c.pull({ checkpoint: from, limit: 5 })
    expect(exact.body.changes).toHaveLength(5)
    expect(exact.body.has_more).toBe(false)
  })

  it('40 limit absent/0/negative → 100; 5000 → 1000', async () => {
    const c = await client()
    const from = await maxSeq()
    // 1100 entries for 1100 distinct records; hydration needs real rows.
    await app.db.pool.query(
      `WITH o AS (INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 1100) RETURNING id)
       INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
       SELECT 'user:' || $1, 'orders', id::text, 1 FROM o`,
      [c.user],
    )
    for (const limit of [undefined, null, 0, -5]) {
      const r = await c.pull({ checkpoint: from, limit })
      expect(r.status).toBe(200)
      expect(r.body.changes).toHaveLength(100)
      expect(r.body.has_more).toBe(true)
    }
    const big = await c.pull({ checkpoint: from, limit: 5000 })
    expect(big.body.changes).toHaveLength(1000)
    expect(big.body.has_more).toBe(true)
    const rest = await c.pull({ checkpoint: big.body.checkpoint, limit: 5000 })
    expect(rest.body.changes).toHaveLength(100)
    expect(rest.body.has_more).toBe(false)
  })

  it('41 the limit counts entries, not records', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    const seqs: number[] = []
    for (let i = 0; i < 20; i++) seqs.push(await entry(`user:${c.user}`, 'orders', o, 2))
    const r = await c.pull({ checkpoint: from, limit: 10 })
    expect(r.body.changes).toHaveLength(1)
    expect(r.body.has_more).toBe(true)
    expect(r.body.checkpoint).toBe(seqs[9])
  })

  it('42 interleaved buckets A1 B1 B2 A2 B3', async () => {
    const a = await client()
    const b = await client()
    const from = await maxSeq()
    const [a1, b1, b2, a2, b3] = [
      await insertOrder(a.user),
      await insertOrder(b.user),
      await insertOrder(b.user),
      await insertOrder(a.user),
      await insertOrder(b.user),
    ] as string[]
    await entry(`user:${a.user}`, 'orders', a1 as string, 1)
    await entry(`user:${b.user}`, 'orders', b1 as string, 1)
    await entry(`user:${b.user}`, 'orders', b2 as string, 1)
    const a2seq = await entry(`user:${a.user}`, 'orders', a2 as string, 1)
    await entry(`user:${b.user}`, 'orders', b3 as string, 1)
    const p1 = await a.pull({ checkpoint: from, limit: 1 })
    expect(ids(p1.body.changes)).toEqual([a1])
    expect(p1.body.has_more).toBe(true)
    const p2 = await a.pull({ checkpoint: p1.body.checkpoint })
    expect(ids(p2.body.changes)).toEqual([a2])
    expect(p2.body.has_more).toBe(false)
    expect(p2.body.checkpoint).toBe(a2seq)
    const pb = await b.pull({ checkpoint: from })
    expect(ids(pb.body.changes)).toEqual([b1, b2, b3].sort())
  })

  it('43 nothing new → empty arrays, checkpoint echoed, last_pull_at/last_sync_at refreshed', async () => {
    const c = await client()
    const from = await maxSeq()
    const r = await c.pull({ checkpoint: from })
    expect(r.body).toEqual({
      changes: [],
      deletes: [],
      checkpoint: from,
      has_more: false,
      schema_version: c.version,
      schema_hash: c.hash,
    })
    const row1 = await c.row()
    expect(row1.last_pull_at).not.toBeNull()
    expect(row1.last_sync_at).not.toBeNull()
    await new Promise((res) => setTimeout(res, 5))
    await c.pull({ checkpoint: from })
    const row2 = await c.row()
    expect(row2.last_pull_at! > row1.last_pull_at!).toBe(true)
  })

  it('44 the stored checkpoint only moves up; resetting it and re-pulling returns the same changes', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    const seq = await entry(`user:${c.user}`, 'orders', o, 1)
    const first = await c.pull({ checkpoint: from })
    expect((await c.row()).last_pull_seq).toBe(String(seq))
    await c.pull({ checkpoint: from }) // an older checkpoint never lowers it
    expect((await c.row()).last_pull_seq).toBe(String(seq))
    await app.db.pool.query(`UPDATE sync_clients SET last_pull_seq = 0 WHERE client_id = $1`, [c.clientId])
    const again = await c.pull({ checkpoint: from })
    expect(again.body.changes).toEqual(first.body.changes)
    expect(again.body.checkpoint).toBe(first.body.checkpoint)
  })

  it('45 tables filter returns only listed tables; [] = no filter; unknown table → nothing', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    const x = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'c45')`, [x, c.user])
    await entry(`user:${c.user}`, 'orders', o, 1)
    const catSeq = await entry(`user:${c.user}`, 'categories', x, 1)
    const f = await c.pull({ checkpoint: from, tables: ['categories'] })
    expect(ids(f.body.changes)).toEqual([x])
    expect(f.body.checkpoint).toBe(catSeq)
    const all = await c.pull({ checkpoint: from, tables: [] })
    expect(ids(all.body.changes)).toEqual([o, x].sort())
    const none = await c.pull({ checkpoint: from, tables: ['nope'] })
    expect(none.body.changes).toEqual([])
    expect(none.body.checkpoint).toBe(from)
  })

  it('45 / Decision 9: a filtered pull never stores a checkpoint past entries of tables it skipped', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    const x = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'c9')`, [x, c.user])
    const orderSeq = await entry(`user:${c.user}`, 'orders', o, 1)
    const catSeq = await entry(`user:${c.user}`, 'categories', x, 1)
    const f = await c.pull({ checkpoint: from, tables: ['categories'] })
    expect(f.body.checkpoint).toBe(catSeq)
    // the skipped orders entry is still ahead of the stored checkpoint
    expect(Number((await c.row()).last_pull_seq)).toBe(orderSeq - 1)
    // an unfiltered pull then advances it normally
    const u = await c.pull({ checkpoint: from })
    expect(u.body.checkpoint).toBe(catSeq)
    expect(Number((await c.row()).last_pull_seq)).toBe(catSeq)
    // with no skipped entry the filtered pull stores its checkpoint
    const x2 = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'c9b')`, [x2, c.user])
    const cat2 = await entry(`user:${c.user}`, 'categories', x2, 1)
    await c.pull({ checkpoint: catSeq, tables: ['categories'] })
    expect(Number((await c.row()).last_pull_seq)).toBe(cat2)
  })

  it('46 a row hard-deleted from its table is silently missing; others returned; checkpoint advances', async () => {
    const c = await client()
    const from = await maxSeq()
    const gone = await insertOrder(c.user)
    const kept = await insertOrder(c.user)
    await entry(`user:${c.user}`, 'orders', gone, 1)
    const last = await entry(`user:${c.user}`, 'orders', kept, 1)
    await app.db.pool.query(`DELETE FROM orders WHERE id = $1`, [gone])
    const r = await c.pull({ checkpoint: from })
    expect(r.status).toBe(200)
    expect(ids(r.body.changes)).toEqual([kept])
    expect(r.body.checkpoint).toBe(last)
    expect(Number((await c.row()).last_pull_seq)).toBe(last)
  })

  it('47 an op-2 entry for a now soft-deleted row → change with deleted_at', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    await app.db.pool.query(`UPDATE orders SET deleted_at = '2026-05-06T07:08:09.123456Z' WHERE id = $1`, [o])
    await entry(`user:${c.user}`, 'orders', o, 2)
    const r = await c.pull({ checkpoint: from })
    expect(r.body.changes).toHaveLength(1)
    expect(r.body.changes[0].deleted_at).toBe('2026-05-06T07:08:09.123456Z')
    expect(r.body.changes[0].data.deleted_at).toMatch(/^2026-05-06T07:08:09\.123456[+-]\d{2}:\d{2}$/)
  })

  it('52 / Decision 19 known_buckets → bucket_updates', async () => {
    const c = await client()
    const from = await maxSeq()
    const u = `user:${c.user}`
    const pull = (known: unknown) => c.pull({ checkpoint: from, known_buckets: known })
    expect((await pull(undefined)).body).not.toHaveProperty('bucket_updates')
    expect((await pull(null)).body).not.toHaveProperty('bucket_updates')
    expect((await pull([])).body.bucket_updates).toEqual({ added: [u, 'global'] })
    expect((await pull(['global', u])).body).not.toHaveProperty('bucket_updates')
    expect((await pull([u, 'global', 'share:x'])).body.bucket_updates).toEqual({ removed: ['share:x'] })
    expect((await pull(['global'])).body.bucket_updates).toEqual({ added: [u] })
    expect((await pull(['zz', 'global', 'aa'])).body.bucket_updates).toEqual({ added: [u], removed: ['zz', 'aa'] })
  })

  it('52 bucketUpdates: order rules and duplicates', () => {
    expect(bucketUpdates(['a', 'b', 'c'], ['c', 'x', 'y', 'x'])).toEqual({ added: ['a', 'b'], removed: ['x', 'y'] })
    expect(bucketUpdates(['a'], undefined)).toBeUndefined()
    expect(bucketUpdates(['a'], ['a', 'a'])).toBeUndefined()
  })

  it('53 / Decision 17 edited subscriptions are pulled, bucket ids with commas included', async () => {
    const c = await client()
    const from = await maxSeq()
    await app.db.pool.query(`UPDATE sync_clients SET bucket_subs = $1 WHERE client_id = $2`, [
      [`user:${c.user}`, 'global', 'team:1', 'team:a,b'],
      c.clientId,
    ])
    const p3 = '00000000-0000-4000-8000-000000000003'
    const p4 = '00000000-0000-4000-8000-000000000004'
    await entry('team:1', 'products', p3, 2)
    await entry('team:a,b', 'products', p4, 2)
    await entry('team:a', 'products', '00000000-0000-4000-8000-000000000005', 2)
    const r = await c.pull({ checkpoint: from, known_buckets: [] })
    expect(ids(r.body.changes)).toEqual([p3, p4])
    expect(r.body.bucket_updates).toEqual({ added: [`user:${c.user}`, 'global', 'team:1', 'team:a,b'] })
  })

  it('Decision 5: without RLS, a row in the caller’s bucket owned by someone else is omitted (incl. children)', async () => {
    const a = await client()
    const b = await client()
    const from = await maxSeq()
    const theirs = await insertOrder(b.user)
    const mine = await insertOrder(a.user)
    const detail = randomUUID()
    await app.db.pool.query(`INSERT INTO order_details (id, order_id) VALUES ($1, $2)`, [detail, theirs])
    const myDetail = randomUUID()
    await app.db.pool.query(`INSERT INTO order_details (id, order_id) VALUES ($1, $2)`, [myDetail, mine])
    const theirCat = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id) VALUES ($1, $2)`, [theirCat, b.user])
    for (const [t, id] of [
      ['orders', theirs],
      ['orders', mine],
      ['order_details', detail],
      ['order_details', myDetail],
      ['categories', theirCat],
      ['categories', '00000000-0000-4000-8000-000000000102'],
    ] as const) {
      await entry(`user:${a.user}`, t, id, 2)
    }
    const last = await maxSeq()
    const r = await a.pull({ checkpoint: from })
    expect(ids(r.body.changes)).toEqual([mine, myDetail, '00000000-0000-4000-8000-000000000102'].sort())
    expect(r.body.checkpoint).toBe(last)
  })

  it('55 changes across tables compare as sets (one hydration query per table)', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    const d = randomUUID()
    await app.db.pool.query(`INSERT INTO order_details (id, order_id, quantity) VALUES ($1, $2, 3)`, [d, o])
    await entry(`user:${c.user}`, 'order_details', d, 1)
    await entry(`user:${c.user}`, 'orders', o, 1)
    await entry('global', 'products', '00000000-0000-4000-8000-000000000001', 2)
    const r = await c.pull({ checkpoint: from })
    expect(new Set(r.body.changes.map((x: any) => `${x.table_name}/${x.id}`))).toEqual(
      new Set([`order_details/${d}`, `orders/${o}`, 'products/00000000-0000-4000-8000-000000000001']),
    )
    expect(r.body.changes.find((x: any) => x.id === d).data.quantity).toBe(3)
  })

  it('Decision 8: a checkpoint ahead of every seq ever issued → history_unavailable, no side effects', async () => {
    const c = await client()
    const before = await c.row()
    const r = await c.pull({ checkpoint: (await maxSeq()) + 1_000_000 })
    expect(r.body).toMatchObject({
      snapshot_required: true,
      snapshot_reason: 'history_unavailable',
      changes: [],
      deletes: [],
      has_more: false,
    })
    expect(await c.row()).toEqual(before)
    // the sequence's last value counts as issued even when the entry is gone (rolled back / deleted)
    const seq = await entry('nobody', 'orders', randomUUID(), 1)
    await app.db.pool.query(`DELETE FROM sync_changelog WHERE seq = $1`, [seq])
    const ok = await c.pull({ checkpoint: seq })
    expect(ok.body).not.toHaveProperty('snapshot_required')
    expect(ok.body.checkpoint).toBe(seq)
  })

  it('a client with a stored checkpoint may pull from 0 again (re-sync of the retained changelog)', async () => {
    const c = await client()
    const r = await c.pull({ checkpoint: 0, limit: 1 })
    expect(r.body).not.toHaveProperty('snapshot_required')
    expect(r.body.changes.length + r.body.deletes.length).toBeLessThanOrEqual(1)
  })
})

describe('hostile input to pull', () => {
  it('SQL-ish table names, NUL bytes, huge limits, negative and huge checkpoints → 4xx or a correct answer', async () => {
    const c = await client()
    const from = await maxSeq()
    const o = await insertOrder(c.user)
    await entry(`user:${c.user}`, 'orders', o, 1)
    for (const tables of [
      ["orders'; DROP TABLE orders; --"],
      ['"orders"'],
      ['orders) OR (1=1'],
      ['*'],
      Array.from({ length: 5000 }, (_, i) => `t${i}`),
    ]) {
      const r = await c.pull({ checkpoint: from, tables })
      expect(r.status).toBe(200)
      expect(r.body.changes).toEqual([])
    }
    expect((await c.pull({ checkpoint: from, tables: ['orders\u0000'] })).status).toBe(400)
    expect((await c.pull({ checkpoint: from, known_buckets: ['\u0000'] })).status).toBe(400)
    expect((await c.pull({ client_id: 'x\u0000' })).status).toBe(400)
    expect((await c.pull({ checkpoint: from, known_buckets: ["'; --", '"'] })).body.bucket_updates.removed).toEqual([
      "'; --",
      '"',
    ])
    expect((await c.pull({ checkpoint: from, limit: 2_147_483_647 })).status).toBe(200)
    expect((await c.pull({ checkpoint: from, limit: 2 ** 40 })).status).toBe(400)
    expect((await c.pull({ checkpoint: from, limit: -(2 ** 31) })).status).toBe(200)
    const neg = await c.pull({ checkpoint: -5, limit: 1 })
    expect(neg.status).toBe(200)
    expect(neg.body).not.toHaveProperty('snapshot_required')
    const huge = await c.pull({ checkpoint: Number.MAX_SAFE_INTEGER })
    expect(huge.status).toBe(200)
    expect(huge.body.snapshot_reason).toBe('history_unavailable')
    expect((await c.pull({ checkpoint: 2 ** 63 })).status).toBe(400)
    expect((await c.pull({ checkpoint: '1' })).status).toBe(400)
    expect((await c.pull({ tables: 'orders' })).status).toBe(400)
    expect((await c.pull({ client_id: 'y'.repeat(100_000) })).status).toBe(404)
    // nothing was dropped
    const { rows } = await app.db.pool.query(`SELECT count(*)::int AS n FROM orders WHERE id = $1`, [o])
    expect(rows[0].n).toBe(1)
  })
})

describe('§3 D 48 / Decision 14 syncColumns', () => {
  let sc: TestApp
  beforeAll(async () => {
    sc = await createTestApp({
      seed: true,
      tables: NORTHWIND_TABLES.map((t) =>
        t.tableName === 'products' ? { ...t, syncColumns: ['name', 'unit_price'] } : t,
      ),
    })
  })
  afterAll(async () => {
    await sc.close()
  })

  it('48 data contains exactly the configured columns (+ id, updated_at, deleted_at) in pull and snapshot', async () => {
    const c = await client({ on: sc })
    await entry('global', 'products', '00000000-0000-4000-8000-000000000001', 2, sc.db.pool)
    const r = await c.pull({ checkpoint: 0 })
    expect(r.status).toBe(200)
    expect(Object.keys(r.body.changes[0].data).sort()).toEqual(['deleted_at', 'id', 'name', 'unit_price', 'updated_at'])
    const s = await sc.call('POST', '/sync/snapshot', {
      user: c.user,
      body: { client_id: c.clientId, schema_version: c.version, schema_hash: c.hash, limit: 1000 },
    })
    const prod = s.body.records.filter((x: any) => x.table_name === 'products')
    expect(prod).toHaveLength(5)
    for (const p of prod)
      expect(Object.keys(p.data).sort()).toEqual(['deleted_at', 'id', 'name', 'unit_price', 'updated_at'])
  })
})

describe('§3 D 54 under RLS (non-superuser role) and Decision 10', () => {
  let base: TestApp
  let rls: TestApp
  let rolePool: pg.Pool
  beforeAll(async () => {
    base = await createTestApp({ seed: true })
    await base.engine.applyRls()
    rolePool = await createAppRolePool(base.db)
    rls = await createTestApp({ db: base.db, engine: { pool: rolePool, migrate: false } })
  })
  afterAll(async () => {
    await rls.close()
    await rolePool.end()
    await base.close()
  })

  it('54 an entry in U’s bucket for a row now owned by someone else is silently omitted', async () => {
    const u = await client({ on: rls })
    const other = randomUUID()
    const moved = randomUUID()
    const mine = randomUUID()
    await base.db.pool.query(`INSERT INTO orders (id, user_id) VALUES ($1, $2), ($3, $4)`, [moved, other, mine, u.user])
    await entry(`user:${u.user}`, 'orders', moved, 2, base.db.pool)
    const last = await entry(`user:${u.user}`, 'orders', mine, 2, base.db.pool)
    await entry('global', 'categories', '00000000-0000-4000-8000-000000000103', 2, base.db.pool)
    const r = await u.pull({ checkpoint: 0, limit: 2 })
    expect(r.status).toBe(200)
    expect(ids(r.body.changes)).toEqual([mine])
    expect(r.body.checkpoint).toBe(last)
    const withGlobal = await u.pull({ checkpoint: 0, limit: 1000 })
    expect(ids(withGlobal.body.changes)).toEqual([mine, '00000000-0000-4000-8000-000000000103'].sort())
  })

  it('Decision 10: a hydration failure is an error and the stored checkpoint does not move', async () => {
    const u = await client({ on: rls })
    const from = Number((await base.db.pool.query(`SELECT max(seq)::text AS s FROM sync_changelog`)).rows[0].s)
    await u.pull({ checkpoint: from })
    const stored = (await u.row()).last_pull_seq
    const role = (await rolePool.query(`SELECT current_user AS r`)).rows[0].r
    await entry('global', 'products', '00000000-0000-4000-8000-000000000001', 2, base.db.pool)
    await base.db.pool.query(`REVOKE SELECT ON products FROM "${role}"`)
    try {
      const r = await u.pull({ checkpoint: from })
      expect(r.status).toBe(500)
      expect(r.body).toEqual({ error: 'failed to pull changes' })
      expect((await u.row()).last_pull_seq).toBe(stored)
    } finally {
      await base.db.pool.query(`GRANT SELECT ON products TO "${role}"`)
    }
    const ok = await u.pull({ checkpoint: from })
    expect(ids(ok.body.changes)).toEqual(['00000000-0000-4000-8000-000000000001'])
  })
})
