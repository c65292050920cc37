import { randomUUID } from 'node:crypto'
import { createAppRolePool, createTestApp, NORTHWIND_TABLES, type TestApp } from '@synchro/test-harness'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

interface WireRecord {
  id: string
  table_name: string
  data: { [k: string]: unknown }
  updated_at: string
  deleted_at?: string
}
interface Cursor {
  checkpoint: number
  table_idx: number
  after_id: string
}

let app: TestApp
beforeAll(async () => {
  app = await createTestApp({ seed: true })
})
afterAll(async () => {
  await app.close()
})

const PRODUCTS = [1, 2, 3, 4, 5].map((i) => `00000000-0000-4000-8000-00000000000${i}`)
const GLOBAL_CATEGORIES = [101, 102, 103].map((i) => `00000000-0000-4000-8000-000000000${i}`)

async function entry(bucket: string, table: string, id: string, op: 1 | 2 | 3, db: pg.Pool = app.db.pool) {
  const { rows } = await db.query<{ seq: string }>(
    `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, $2, $3, $4) RETURNING seq::text`,
    [bucket, table, id, op],
  )
  return Number(rows[0]?.seq)
}

async function maxSeq(db: pg.Pool = app.db.pool): Promise<number> {
  const { rows } = await db.query(`SELECT coalesce(max(seq), 0)::text AS s FROM sync_changelog`)
  return Number(rows[0].s)
}

async function orders(user: string, n: number, db: pg.Pool = app.db.pool): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, $2) RETURNING id::text`,
    [user, n],
  )
  return rows.map((r) => r.id).sort()
}

interface Client {
  user: string
  clientId: string
  version: number
  hash: string
  snap(body?: Record<string, unknown>): Promise<{ status: number; body: any }>
  pull(body?: Record<string, unknown>): Promise<{ status: number; body: any }>
  /** Pages to the end; returns every page. */
  all(limit?: number): Promise<{ records: WireRecord[]; checkpoint: number; cursor?: Cursor; has_more: boolean }[]>
  row(): Promise<{ last_pull_seq: string | null; last_sync_at: string | null; is_active: boolean }>
}

async function client(opts: { user?: string; on?: TestApp } = {}): Promise<Client> {
  const on = opts.on ?? app
  const user = opts.user ?? randomUUID()
  const reg = await on.registerClient(user)
  const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
  const snap = (body: Record<string, unknown> = {}) =>
    on.call('POST', '/sync/snapshot', { user, body: { ...pair, ...body } })
  return {
    user,
    clientId: reg.clientId,
    version: reg.version,
    hash: reg.hash,
    snap,
    pull: (body = {}) => on.call('POST', '/sync/pull', { user, body: { ...pair, checkpoint: 0, ...body } }),
    async all(limit = 1000) {
      const pages = []
      let cursor: Cursor | undefined
      for (let i = 0; i < 10_000; i++) {
        const r = await snap({ cursor, limit })
        expect(r.status).toBe(200)
        pages.push(r.body)
        if (!r.body.has_more) return pages
        cursor = r.body.cursor
      }
      throw new Error('snapshot did not finish')
    },
    row: async () => {
      const { rows } = await on.db.pool.query(
        `SELECT last_pull_seq::text, last_sync_at::text, is_active FROM sync_clients WHERE user_id = $1 AND client_id = $2`,
        [user, reg.clientId],
      )
      return rows[0]
    },
  }
}

const flat = (pages: { records: WireRecord[] }[]) => pages.flatMap((p) => p.records)
const keys = (recs: WireRecord[]) => recs.map((r) => `${r.table_name}/${r.id}`)

describe('§3 E snapshot', () => {
  it('57 / 68 on an empty changelog the first page captures 0 and the cursor carries it even when 0', async () => {
    expect(await maxSeq()).toBe(0)
    const c = await client()
    await orders(c.user, 3)
    const p1 = await c.snap({ limit: 2 })
    expect(p1.status).toBe(200)
    expect(p1.body.checkpoint).toBe(0)
    expect(p1.body.cursor).toEqual({ checkpoint: 0, table_idx: 0, after_id: p1.body.records[1].id })
    // entries arriving between pages never move the captured checkpoint
    await entry(`user:${c.user}`, 'orders', randomUUID(), 1)
    let cursor = p1.body.cursor
    for (;;) {
      const p = await c.snap({ cursor, limit: 2 })
      expect(p.body.checkpoint).toBe(0)
      if (!p.body.has_more) break
      expect(p.body.cursor.checkpoint).toBe(0)
      cursor = p.body.cursor
    }
    expect((await c.row()).last_pull_seq).toBe('0')
  })

  it('56 unregistered → 404; missing client_id → 400; wrong pair or (0,"") → 409', async () => {
    const c = await client()
    const r = await app.call('POST', '/sync/snapshot', {
      user: c.user,
      body: { client_id: 'nobody', schema_version: c.version, schema_hash: c.hash },
    })
    expect(r.status).toBe(404)
    expect(r.body).toEqual({ error: 'client not registered' })
    const missing = await app.call('POST', '/sync/snapshot', {
      user: c.user,
      body: { schema_version: c.version, schema_hash: c.hash },
    })
    expect(missing.status).toBe(400)
    expect(missing.body).toEqual({ error: 'client_id is required' })
    for (const [v, h] of [
      [0, ''],
      [c.version + 1, c.hash],
      [c.version, 'abc'],
    ] as const) {
      const w = await c.snap({ schema_version: v, schema_hash: h })
      expect(w.status).toBe(409)
      expect(w.body.code).toBe('schema_mismatch')
    }
  })

  it('57 the first page captures max(seq); every later page returns it in body and cursor', async () => {
    const c = await client()
    await orders(c.user, 4)
    await entry('global', 'products', PRODUCTS[0] as string, 2)
    const top = await maxSeq()
    const p1 = await c.snap({ limit: 1 })
    expect(p1.body.checkpoint).toBe(top)
    await entry('global', 'products', PRODUCTS[1] as string, 2)
    let cursor = p1.body.cursor
    let pages = 1
    for (;;) {
      const p = await c.snap({ cursor, limit: 1 })
      pages++
      expect(p.body.checkpoint).toBe(top)
      if (!p.body.has_more) break
      expect(p.body.cursor.checkpoint).toBe(top)
      cursor = p.body.cursor
    }
    expect(pages).toBeGreaterThan(5)
  })

  it('58 registration order, PK text order, soft-deleted rows excluded, no deleted_at key', async () => {
    const c = await client()
    const mine = await orders(c.user, 5)
    const dead = mine[2] as string
    await app.db.pool.query(`UPDATE orders SET deleted_at = now() WHERE id = $1`, [dead])
    const od = randomUUID()
    await app.db.pool.query(`INSERT INTO order_details (id, order_id) VALUES ($1, $2)`, [od, mine[0]])
    const cat = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'mine')`, [cat, c.user])
    const recs = flat(await c.all())
    const expected = [
      ...mine.filter((x) => x !== dead).map((x) => `orders/${x}`),
      `order_details/${od}`,
      ...PRODUCTS.map((p) => `products/${p}`),
      ...[...GLOBAL_CATEGORIES, cat].sort().map((x) => `categories/${x}`),
    ]
    expect(keys(recs)).toEqual(expected)
    for (const r of recs) {
      expect(r).not.toHaveProperty('deleted_at')
      expect(Object.keys(r).sort()).toEqual(['data', 'id', 'table_name', 'updated_at'])
      expect(r.data.deleted_at).toBeNull()
      expect(r.updated_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/)
    }
  })

  it('59 three orders, limit 2 → cursor {0, 2nd id}; pages finish; union = all live rows, no duplicates', async () => {
    const c = await client()
    const mine = await orders(c.user, 3)
    const p1 = await c.snap({ limit: 2 })
    expect(p1.body.records.map((r: WireRecord) => r.id)).toEqual(mine.slice(0, 2))
    expect(p1.body.has_more).toBe(true)
    expect(p1.body.cursor).toMatchObject({ table_idx: 0, after_id: mine[1] })
    const pages = [p1.body]
    let cursor = p1.body.cursor
    for (;;) {
      const p = await c.snap({ cursor, limit: 2 })
      pages.push(p.body)
      if (!p.body.has_more) {
        expect(p.body).not.toHaveProperty('cursor')
        break
      }
      cursor = p.body.cursor
    }
    const all = keys(flat(pages))
    expect(new Set(all).size).toBe(all.length)
    expect(all).toEqual([
      ...mine.map((x) => `orders/${x}`),
      ...PRODUCTS.map((p) => `products/${p}`),
      ...GLOBAL_CATEGORIES.map((x) => `categories/${x}`),
    ])
  })

  it('60 a page spans tables', async () => {
    const c = await client()
    await orders(c.user, 3)
    const p = await c.snap({ limit: 100 })
    expect(p.body.has_more).toBe(false)
    expect(new Set(p.body.records.map((r: WireRecord) => r.table_name))).toEqual(
      new Set(['orders', 'products', 'categories']),
    )
    expect(p.body.records).toHaveLength(3 + 5 + 3)
  })

  it('61 a table filling a page exactly keeps the cursor on it; has_more true while tables remain; last page may be empty', async () => {
    const c = await client()
    const mine = await orders(c.user, 3)
    const p1 = await c.snap({ limit: 3 })
    expect(p1.body.records).toHaveLength(3)
    expect(p1.body.cursor).toMatchObject({ table_idx: 0, after_id: mine[2] })
    expect(p1.body.has_more).toBe(true)
    // last table exactly filling the final page: still has_more, then an empty final page
    const cats = GLOBAL_CATEGORIES.length
    const lastPage = await c.snap({ cursor: { checkpoint: 0, table_idx: 3, after_id: '' }, limit: cats })
    expect(lastPage.body.records).toHaveLength(cats)
    expect(lastPage.body.has_more).toBe(true)
    const empty = await c.snap({ cursor: lastPage.body.cursor, limit: cats })
    expect(empty.body.records).toEqual([])
    expect(empty.body.has_more).toBe(false)
    expect(empty.body).not.toHaveProperty('cursor')
  })

  it('62 limit rules: absent/0/negative → 100; 5000 → 1000', async () => {
    const c = await client()
    await orders(c.user, 1100)
    for (const limit of [undefined, null, 0, -1]) {
      const r = await c.snap({ limit })
      expect(r.body.records).toHaveLength(100)
    }
    expect((await c.snap({ limit: 5000 })).body.records).toHaveLength(1000)
  })

  it('63 only the final page has side effects: last_pull_seq := checkpoint (never lower), last_sync_at, is_active', async () => {
    const c = await client()
    await orders(c.user, 3)
    await entry('global', 'products', PRODUCTS[2] as string, 2)
    const top = await maxSeq()
    const p1 = await c.snap({ limit: 2 })
    expect(await c.row()).toMatchObject({ last_pull_seq: null, last_sync_at: null })
    let cursor = p1.body.cursor
    for (;;) {
      const p = await c.snap({ cursor, limit: 2 })
      if (!p.body.has_more) break
      expect((await c.row()).last_pull_seq).toBeNull()
      cursor = p.body.cursor
    }
    const done = await c.row()
    expect(done.last_pull_seq).toBe(String(top))
    expect(done.last_sync_at).not.toBeNull()
    // a higher stored checkpoint is never lowered by a later snapshot with an older cursor checkpoint
    await app.db.pool.query(`UPDATE sync_clients SET last_pull_seq = $1 WHERE client_id = $2`, [top + 50, c.clientId])
    await c.snap({ cursor: { checkpoint: top, table_idx: 99, after_id: '' } })
    expect((await c.row()).last_pull_seq).toBe(String(top + 50))
  })

  it('64 a deactivated client is active again after a completed snapshot', async () => {
    const c = await client()
    await app.db.pool.query(`UPDATE sync_clients SET is_active = false WHERE client_id = $1`, [c.clientId])
    await c.snap({ limit: 1 })
    expect((await c.row()).is_active).toBe(false)
    await c.all()
    expect((await c.row()).is_active).toBe(true)
  })

  it('65 after a completed snapshot, pull from its checkpoint is served and returns only later entries', async () => {
    const c = await client()
    const [o] = await orders(c.user, 1)
    await entry(`user:${c.user}`, 'orders', o as string, 1)
    const pages = await c.all()
    const cp = (pages[pages.length - 1] as { checkpoint: number }).checkpoint
    const [o2] = await orders(c.user, 1)
    const later = await entry(`user:${c.user}`, 'orders', o2 as string, 1)
    const r = await c.pull({ checkpoint: cp })
    expect(r.body).not.toHaveProperty('snapshot_required')
    expect(r.body.changes.map((x: WireRecord) => x.id)).toEqual([o2])
    expect(r.body.checkpoint).toBe(later)
  })

  it('66 table_idx ≥ number of tables → empty final page with side effects', async () => {
    const c = await client()
    for (const idx of [4, 1000, 2_147_483_647]) {
      const r = await c.snap({ cursor: { checkpoint: 7, table_idx: idx, after_id: 'whatever' } })
      expect(r.status).toBe(200)
      expect(r.body).toEqual({
        records: [],
        checkpoint: 7,
        has_more: false,
        schema_version: c.version,
        schema_hash: c.hash,
      })
    }
    expect(await c.row()).toMatchObject({ last_pull_seq: '7', is_active: true })
  })

  it('67 / Decision 5 two users: B’s snapshot never contains A’s orders or order_details; both see global rows', async () => {
    const a = await client()
    const b = await client()
    const aOrders = await orders(a.user, 4)
    const bOrders = await orders(b.user, 2)
    const aDetails: string[] = []
    for (const o of aOrders) {
      const { rows } = await app.db.pool.query(`INSERT INTO order_details (order_id) VALUES ($1) RETURNING id::text`, [
        o,
      ])
      aDetails.push(rows[0].id)
    }
    const bDetail = (
      await app.db.pool.query(`INSERT INTO order_details (order_id) VALUES ($1) RETURNING id::text`, [bOrders[0]])
    ).rows[0].id
    const aCat = randomUUID()
    await app.db.pool.query(`INSERT INTO categories (id, user_id, name) VALUES ($1, $2, 'a-only')`, [aCat, a.user])
    for (const limit of [1, 3, 1000]) {
      const bRecs = flat(await b.all(limit))
      const bKeys = new Set(keys(bRecs))
      for (const o of aOrders) expect(bKeys.has(`orders/${o}`)).toBe(false)
      for (const d of aDetails) expect(bKeys.has(`order_details/${d}`)).toBe(false)
      expect(bKeys.has(`categories/${aCat}`)).toBe(false)
      expect(keys(bRecs)).toEqual([
        ...bOrders.map((o) => `orders/${o}`),
        `order_details/${bDetail}`,
        ...PRODUCTS.map((p) => `products/${p}`),
        ...GLOBAL_CATEGORIES.map((x) => `categories/${x}`),
      ])
      for (const r of bRecs) if (r.table_name === 'orders') expect(r.data.user_id).toBe(b.user)
    }
    const aKeys = keys(flat(await a.all()))
    expect(aKeys).toEqual([
      ...aOrders.map((o) => `orders/${o}`),
      ...[...aDetails].sort().map((d) => `order_details/${d}`),
      ...PRODUCTS.map((p) => `products/${p}`),
      ...[...GLOBAL_CATEGORIES, aCat].sort().map((x) => `categories/${x}`),
    ])
  })
})

describe('hostile snapshot cursors', () => {
  it('negative table_idx or checkpoint → 400; hostile after_id → correct page; NUL → 400; wrong types → 400', async () => {
    const c = await client()
    const mine = await orders(c.user, 3)
    const bad = [
      { checkpoint: 0, table_idx: -1, after_id: '' },
      { checkpoint: -1, table_idx: 0, after_id: '' },
      { checkpoint: 0, table_idx: 0, after_id: 'a\u0000b' },
    ]
    for (const cursor of bad) {
      const r = await c.snap({ cursor })
      expect(r.status).toBe(400)
    }
    for (const cursor of [{ checkpoint: 0, table_idx: 1.5, after_id: '' }, { checkpoint: '0' }, [], 'x']) {
      expect((await c.snap({ cursor })).status).toBe(400)
    }
    for (const after of ["' OR 1=1 --", "'); DROP TABLE orders; --", 'zzzz', '', '\u{1F600}', 'Z'.repeat(10_000)]) {
      const r = await c.snap({ cursor: { checkpoint: 0, table_idx: 0, after_id: after }, limit: 1000 })
      expect(r.status).toBe(200)
      const got = r.body.records.filter((x: WireRecord) => x.table_name === 'orders').map((x: WireRecord) => x.id)
      // text order of the canonical uuid form, byte-wise
      expect(got).toEqual(mine.filter((id) => Buffer.compare(Buffer.from(id), Buffer.from(after)) > 0))
    }
    // a valid uuid in upper case compares like its canonical form
    const up = await c.snap({ cursor: { checkpoint: 0, table_idx: 0, after_id: (mine[0] as string).toUpperCase() } })
    expect(up.body.records.filter((x: WireRecord) => x.table_name === 'orders').map((x: WireRecord) => x.id)).toEqual(
      mine.slice(1),
    )
    const { rows } = await app.db.pool.query(`SELECT count(*)::int AS n FROM orders`)
    expect(rows[0].n).toBeGreaterThan(0)
  })
})

describe('keyset paging over non-uuid primary keys', () => {
  let k: TestApp
  beforeAll(async () => {
    k = await createTestApp({
      extraSql: `
        CREATE TABLE items_int (id bigint PRIMARY KEY, v text NOT NULL DEFAULT '', updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
        CREATE TABLE items_text (id text PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
        CREATE TABLE items_num (id numeric PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
        INSERT INTO items_int (id) SELECT g FROM generate_series(-3, 25) g;
        INSERT INTO items_text (id) VALUES ('b'), ('a'), ('B'), ('a b'), ('ä'), ('10'), ('9');
        INSERT INTO items_num (id) VALUES (1.5), (10), (9), (-2);`,
      tables: [
        ...NORTHWIND_TABLES,
        { tableName: 'items_int', pushPolicy: 'disabled' },
        { tableName: 'items_text', pushPolicy: 'disabled' },
        { tableName: 'items_num', pushPolicy: 'disabled' },
      ],
    })
  })
  afterAll(async () => {
    await k.close()
  })

  it('every row exactly once at every page size; a non-integer after_id on an integer key → 400', async () => {
    const c = await client({ on: k })
    for (const limit of [1, 2, 7, 1000]) {
      const recs = flat(await c.all(limit))
      const by = (t: string) => recs.filter((r) => r.table_name === t).map((r) => r.id)
      expect(by('items_int')).toEqual(Array.from({ length: 29 }, (_, i) => String(i - 3)))
      expect([...by('items_text')].sort()).toEqual(['10', '9', 'B', 'a', 'a b', 'b', 'ä'].sort())
      expect(new Set(by('items_text')).size).toBe(7)
      expect(by('items_num')).toEqual(['-2', '1.5', '10', '9'])
    }
    const r = await c.snap({ cursor: { checkpoint: 0, table_idx: 4, after_id: "1'; --" } })
    expect(r.status).toBe(400)
    expect(r.body).toEqual({ error: 'invalid cursor' })
    const r2 = await c.snap({ cursor: { checkpoint: 0, table_idx: 4, after_id: '99999999999999999999' } })
    expect(r2.status).toBe(400)
  })
})

describe('Decision 5 under RLS (non-superuser role)', () => {
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

  it('two users through the app role: each sees only their rows plus global ones', async () => {
    const a = await client({ on: rls })
    const b = await client({ on: rls })
    const aOrders = await orders(a.user, 2, base.db.pool)
    const bOrders = await orders(b.user, 2, base.db.pool)
    const aDetail = (
      await base.db.pool.query(`INSERT INTO order_details (order_id) VALUES ($1) RETURNING id::text`, [aOrders[0]])
    ).rows[0].id
    const bKeys = keys(flat(await b.all(2)))
    expect(bKeys).toEqual([
      ...bOrders.map((o) => `orders/${o}`),
      ...PRODUCTS.map((p) => `products/${p}`),
      ...GLOBAL_CATEGORIES.map((x) => `categories/${x}`),
    ])
    const aKeys = keys(flat(await a.all(1000)))
    expect(aKeys).toContain(`order_details/${aDetail}`)
    expect((await b.row()).last_pull_seq).toBe('0')
  })
})
