import { randomUUID } from 'node:crypto'
import type { SnapshotRequest } from '@synchro/protocol'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renderJsonBytes } from '../pull/record.js'
import { snapshotRecordCount } from './records.js'

type Cursor = NonNullable<SnapshotRequest['cursor']>

// Read-ahead of 4 rows: with a handful of rows per test, pages are served from read-ahead rows, from rows read in
// the background, and from the database, and switch between them mid-table.
let app: TestApp
beforeAll(async () => {
  app = await createTestApp({ seed: true, engine: { snapshotReadAhead: { rows: 4 } } })
})
afterAll(async () => {
  await app.close()
})

async function client(user = randomUUID(), clientId?: string) {
  const reg = await app.registerClient(user, clientId)
  const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
  return {
    user,
    reg,
    snap: (body: Record<string, unknown> = {}) =>
      app.call('POST', '/sync/snapshot', { user, body: { ...pair, ...body } }),
  }
}

async function orders(user: string, n: number): Promise<string[]> {
  const { rows } = await app.db.pool.query<{ id: string }>(
    `INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, $2) RETURNING id::text`,
    [user, n],
  )
  return rows.map((r) => r.id).sort()
}

/** Waits until no read-ahead read is under way (the next page would wait for it anyway). */
async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 50))
}

const cache = () => app.engine.ctx.snapshotCache

describe('snapshot read-ahead', () => {
  it('every live row exactly once, whatever the page sizes, as without read-ahead', async () => {
    const c = await client()
    const mine = await orders(c.user, 23)
    const other = await orders(randomUUID(), 5)
    // Limits that change from page to page: read-ahead rows run short, are awaited, or are left over.
    for (const limits of [[1], [2, 7], [5, 1, 3], [9, 4], [1000]]) {
      const seen: string[] = []
      let cursor: Cursor | undefined
      for (let i = 0; ; i++) {
        const r = await c.snap({ cursor, limit: limits[i % limits.length] })
        expect(r.status).toBe(200)
        seen.push(...r.body.records.map((x: { table_name: string; id: string }) => `${x.table_name}/${x.id}`))
        if (!r.body.has_more) break
        cursor = r.body.cursor
        if (i % 3 === 0) await settle()
      }
      const ordersSeen = seen.filter((k) => k.startsWith('orders/')).map((k) => k.slice('orders/'.length))
      expect(ordersSeen).toEqual(mine) // in key order, none of another user's
      expect(ordersSeen.some((id) => other.includes(id))).toBe(false)
      expect(new Set(seen).size).toBe(seen.length)
      expect(seen.filter((k) => k.startsWith('products/')).length).toBeGreaterThan(0)
    }
  })

  it('rows added and removed while pages are read ahead on two connections: the others exactly once, in key order', async () => {
    const c = await client()
    const steady = await orders(c.user, 40)
    const gone = steady.splice(5, 10) // removed one by one while the snapshot goes on
    // Deleted before it starts: key ranges then hold fewer live rows than entries in the key index.
    const before = steady.filter((_, i) => i % 4 === 1)
    await app.db.pool.query(`UPDATE orders SET deleted_at = now() WHERE id = ANY($1::uuid[])`, [before])
    for (const id of before) steady.splice(steady.indexOf(id), 1)
    const seen: string[] = []
    let cursor: Cursor | undefined
    for (let i = 0; ; i++) {
      const r = await c.snap({ cursor, limit: 3 })
      expect(r.status).toBe(200)
      for (const x of r.body.records) if (x.table_name === 'orders') seen.push(x.id)
      if (!r.body.has_more) break
      cursor = r.body.cursor
      await orders(c.user, 2) // new rows anywhere in key order, also inside ranges being read
      if (gone[i]) await app.db.pool.query(`UPDATE orders SET deleted_at = now() WHERE id = $1`, [gone[i]])
      if (i % 2 === 0) await settle()
    }
    expect(seen).toEqual([...seen].sort()) // key order, so no row twice
    expect(new Set(seen).size).toBe(seen.length)
    for (const id of steady) expect(seen).toContain(id)
    for (const id of before) expect(seen).not.toContain(id)
  })

  it('pages of rows converted here render the same bytes unread as once their records are read', async () => {
    const c = await client()
    await orders(c.user, 30)
    const req = { client_id: c.reg.clientId, schema_version: c.reg.version, schema_hash: c.reg.hash, limit: 3 }
    let cursor: Cursor | undefined
    let unread = 0
    for (;;) {
      const res = await app.engine.snapshot(c.user, { ...req, cursor })
      const body = Buffer.from(renderJsonBytes(res))
      // Still unread after the render: the page held runs of converted rows (snapshot/records.ts).
      if (Object.getOwnPropertyDescriptor(res, 'records')?.get) unread++
      expect(snapshotRecordCount(res)).toBe(res.records.length)
      expect(Buffer.from(renderJsonBytes(res)).equals(body)).toBe(true)
      if (!res.has_more) break
      cursor = res.cursor
      await settle()
    }
    expect(unread).toBeGreaterThan(5)
  })

  it('a page served from read-ahead rows still refuses a client removed in between (404)', async () => {
    const c = await client()
    await orders(c.user, 6)
    const p1 = await c.snap({ limit: 2 })
    await settle()
    const held = cache().size
    expect(held).toBeGreaterThan(0)
    await app.db.pool.query(`DELETE FROM sync_clients WHERE user_id = $1 AND client_id = $2`, [c.user, c.reg.clientId])
    const p2 = await c.snap({ cursor: p1.body.cursor, limit: 2 })
    expect(p2.status).toBe(404)
    expect(p2.body).toEqual({ error: 'client not registered' })
    expect(cache().size).toBe(held - 1) // and its rows are gone
  })

  it('rows read ahead are never served to another user, even with the same client id and cursor', async () => {
    const a = await client(randomUUID(), 'shared-id')
    const b = await client(randomUUID(), 'shared-id')
    const aOrders = await orders(a.user, 8)
    const p1 = await a.snap({ limit: 2 })
    const stolen = await b.snap({ cursor: p1.body.cursor, limit: 5 })
    expect(stolen.status).toBe(200)
    const ids = stolen.body.records.map((x: { id: string }) => x.id)
    expect(ids.some((id: string) => aOrders.includes(id))).toBe(false)
    // a's own next page is still there for a
    const p2 = await a.snap({ cursor: p1.body.cursor, limit: 2 })
    expect(p2.body.records.map((x: { id: string }) => x.id)).toEqual(aOrders.slice(2, 4))
  })

  it('after DDL, a page with the old pair is refused (409) and the new pair gets rows rendered under the new schema', async () => {
    const c = await client()
    const d = await client()
    await orders(c.user, 6)
    await orders(d.user, 6)
    const c1 = await c.snap({ limit: 2 })
    const d1 = await d.snap({ limit: 2 })
    await settle()
    await app.db.pool.query(`ALTER TABLE orders ADD COLUMN read_ahead_probe integer`)
    try {
      const old = await d.snap({ cursor: d1.body.cursor, limit: 2 })
      expect(old.status).toBe(409)
      expect(old.body.code).toBe('schema_mismatch')
      const schema = await app.call('GET', '/sync/schema', { user: c.user })
      expect(cache().size).toBeGreaterThan(0) // c's rows, read under the old schema, are still held
      const c2 = await c.snap({
        cursor: c1.body.cursor,
        limit: 2,
        schema_version: schema.body.schema_version,
        schema_hash: schema.body.schema_hash,
      })
      expect(c2.status).toBe(200)
      expect(c2.body.records).toHaveLength(2)
      for (const r of c2.body.records) expect(r.data).toHaveProperty('read_ahead_probe', null)
    } finally {
      await app.db.pool.query(`ALTER TABLE orders DROP COLUMN read_ahead_probe`)
    }
  })
})
