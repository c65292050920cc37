import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bucketsBetween } from '../changelog/reader.js'
import { startWalConsumer, type WalConsumer } from '../wal/index.js'

// Model test: random application writes (owner changes, moves between global and user buckets, children re-parented,
// soft deletes, resurrections, hard deletes), captured by the real WAL consumer while replicas pull in pages of 1–4
// entries, clients go stale and compaction runs in between, and one more device follows the live stream (frames as
// the server renders them, a pull on every poke). Once capture caught up and every replica pulled to the end, each
// replica must hold exactly the rows its user may read, with their current data. The seed rows predate the capture
// (no bucket edges). More seeds: MODEL_SEEDS=1,2,…
let app: TestApp
let consumer: WalConsumer
beforeAll(async () => {
  app = await createTestApp({ seed: true, engine: { compaction: { batchSize: 4 } } })
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

function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Held {
  data: unknown
  deleted: boolean
}

async function replica(user: string) {
  const reg = await app.registerClient(user)
  const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
  const held = new Map<string, Held>()
  let checkpoint = 0
  let snapshots = 0
  const snapshot = async () => {
    snapshots++
    held.clear()
    let cursor: unknown
    for (;;) {
      const r = await app.call('POST', '/sync/snapshot', { user, body: { ...pair, cursor, limit: 7 } })
      expect(r.status).toBe(200)
      for (const x of r.body.records) held.set(`${x.table_name}/${x.id}`, { data: x.data, deleted: false })
      checkpoint = r.body.checkpoint
      if (!r.body.has_more) break
      cursor = r.body.cursor
    }
    position = undefined // unknown until the next pull (a rebuild replaced the data)
  }
  const apply = (page: { changes: any[]; deletes: any[] }) => {
    for (const c of page.changes)
      held.set(`${c.table_name}/${c.id}`, { data: c.data, deleted: c.deleted_at !== undefined })
    for (const d of page.deletes) {
      const h = held.get(`${d.table_name}/${d.id}`)
      if (h) h.deleted = true
    }
  }
  /** Pulls up to `pages` pages (all when undefined) of `limit` entries. */
  const pull = async (limit: number, pages = Number.POSITIVE_INFINITY) => {
    for (let i = 0; i < pages; i++) {
      const r = await app.call('POST', '/sync/pull', { user, body: { ...pair, checkpoint, limit } })
      expect(r.status).toBe(200)
      if (r.body.snapshot_required) {
        await snapshot()
        continue
      }
      apply(r.body)
      checkpoint = r.body.checkpoint
      if (!r.body.has_more) return
    }
  }
  // Live frames as a stream sends them (docs/live-frames.md): the notifier's ranges (last, head], their buckets read as
  // the notifier reads them (`bucketsBetween`), told about those that touch our buckets — or about every range whose
  // buckets are unknown (compaction trimmed it first: this device may have been made stale) with a poke; a frame
  // applies when we hold everything up to its `from`, otherwise (a poke) we pull.
  const subs = [`user:${user}`, 'global']
  let last: number | undefined
  let told = 0
  let position: number | undefined
  const heads = async () =>
    Number((await app.db.pool.query('SELECT coalesce(max(seq), 0)::text AS s FROM sync_changelog')).rows[0].s)
  const tick = async (limit: number) => {
    const head = await heads()
    if (last === undefined || head <= last) {
      last ??= head
      return
    }
    // The notifier's read: none when compaction removed entries of the range first (everyone is poked).
    const touched = await bucketsBetween(app.db.pool, last, head)
    const buckets = touched && subs.filter((b) => touched.has(b))
    const prev = last
    last = head
    if (buckets?.length === 0) return
    const from = told
    told = head
    const body = buckets && (await app.engine.liveFrame(user, buckets, prev, head))
    if (body && position === from) {
      const frame = JSON.parse(`{"from":${from},${new TextDecoder().decode(body).trim()}`)
      apply(frame)
      position = frame.to
      frames++
    } else if (position === undefined || position < head) {
      const heard = told
      await pull(limit)
      position = Math.max(checkpoint, heard)
    }
  }
  let frames = 0
  /** Opens the stream with the stored checkpoint: poked at once when the head is past it. */
  const open = async (limit: number) => {
    last = await heads()
    told = checkpoint
    position = checkpoint
    if (checkpoint < last) {
      told = last
      await pull(limit)
      position = Math.max(checkpoint, told)
    }
  }
  const live = () => {
    const out = new Map<string, unknown>()
    for (const [k, h] of held) if (!h.deleted) out.set(k, h.data)
    return out
  }
  return {
    user,
    clientId: reg.clientId,
    snapshot,
    pull,
    open,
    tick,
    live,
    snapshots: () => snapshots,
    frames: () => frames,
  }
}

/** What `user` may read now, live rows only, with their data. */
async function truth(user: string): Promise<Map<string, unknown>> {
  const { rows } = await app.db.pool.query<{ k: string; data: string }>(
    `SELECT 'orders/' || o.id AS k, to_json(o)::text AS data FROM orders o WHERE o.user_id = $1 AND o.deleted_at IS NULL
     UNION ALL
     SELECT 'order_details/' || d.id, to_json(d)::text FROM order_details d
      WHERE d.deleted_at IS NULL AND EXISTS (SELECT 1 FROM orders o WHERE o.id = d.order_id AND o.user_id = $1)
     UNION ALL
     SELECT 'products/' || p.id, to_json(p)::text FROM products p WHERE p.deleted_at IS NULL
     UNION ALL
     SELECT 'categories/' || c.id, to_json(c)::text FROM categories c
      WHERE c.deleted_at IS NULL AND (c.user_id IS NULL OR c.user_id = $1)`,
    [user],
  )
  return new Map(rows.map((r) => [r.k, JSON.parse(r.data)]))
}

async function pick(sql: string, r: () => number): Promise<string | undefined> {
  const { rows } = await app.db.pool.query<{ id: string }>(sql)
  if (rows.length === 0) return undefined
  return rows[Math.floor(r() * rows.length)]?.id
}

async function step(users: string[], r: () => number): Promise<void> {
  const u = () => users[Math.floor(r() * users.length)] as string
  const ownerOrNull = () => (r() < 0.3 ? null : u())
  const anyOrder = () => pick('SELECT id FROM orders ORDER BY id', r)
  const anyDetail = () => pick('SELECT id FROM order_details ORDER BY id', r)
  const anyCategory = () => pick('SELECT id FROM categories ORDER BY id', r)
  const q = (sql: string, params: unknown[]) => app.db.pool.query(sql, params)
  const n = Math.floor(r() * 9)
  switch (n) {
    case 0:
      await q('INSERT INTO orders (user_id, ship_address) VALUES ($1, $2)', [u(), `a${r()}`])
      return
    case 1: {
      const id = await anyOrder()
      if (id) await q('UPDATE orders SET user_id = $2, total_cents = total_cents + 1 WHERE id = $1', [id, u()])
      return
    }
    case 2: {
      const id = await anyOrder()
      if (!id) return
      const x = r()
      if (x < 0.4)
        await q('UPDATE orders SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END WHERE id = $1', [id])
      else if (x < 0.6) await q('DELETE FROM orders WHERE id = $1', [id])
      else await q('UPDATE orders SET ship_address = $2 WHERE id = $1', [id, `s${r()}`])
      return
    }
    case 3: {
      const o = await anyOrder()
      if (o) await q('INSERT INTO order_details (order_id, product_name) VALUES ($1, $2)', [o, `p${r()}`])
      return
    }
    case 4: {
      const d = await anyDetail()
      const o = await anyOrder()
      if (d && o) await q('UPDATE order_details SET order_id = $2, quantity = quantity + 1 WHERE id = $1', [d, o])
      return
    }
    case 5: {
      const d = await anyDetail()
      if (!d) return
      if (r() < 0.5)
        await q('UPDATE order_details SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END WHERE id = $1', [d])
      else await q('DELETE FROM order_details WHERE id = $1', [d])
      return
    }
    case 6:
      await q('INSERT INTO categories (user_id, name) VALUES ($1, $2)', [ownerOrNull(), `c${r()}`])
      return
    case 7: {
      const c = await anyCategory()
      if (!c) return
      const x = r()
      if (x < 0.6) await q('UPDATE categories SET user_id = $2, name = $3 WHERE id = $1', [c, ownerOrNull(), `n${r()}`])
      else if (x < 0.85)
        await q('UPDATE categories SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END WHERE id = $1', [c])
      else await q('DELETE FROM categories WHERE id = $1', [c])
      return
    }
    default: {
      // Several changes in one transaction: one capture batch, moves and their entries together.
      const c = await app.db.pool.connect()
      try {
        await c.query('BEGIN')
        const o = (await c.query('INSERT INTO orders (user_id) VALUES ($1) RETURNING id', [u()])).rows[0].id
        await c.query('INSERT INTO order_details (order_id) VALUES ($1)', [o])
        await c.query('UPDATE orders SET user_id = $2 WHERE id = $1', [o, u()])
        const cat = await anyCategory()
        if (cat) await c.query('UPDATE categories SET user_id = $2 WHERE id = $1', [cat, ownerOrNull()])
        await c.query('COMMIT')
      } finally {
        c.release()
      }
    }
  }
}

/** Waits until the capture has written everything committed so far (a sentinel product's entry). */
async function caughtUp(): Promise<void> {
  const id = randomUUID()
  await app.db.pool.query(`INSERT INTO products (id, name) VALUES ($1, 'sentinel')`, [id])
  await waitFor(
    async () =>
      (await app.db.pool.query('SELECT 1 FROM sync_changelog WHERE record_id = $1', [id])).rowCount ? true : undefined,
    20_000,
    'capture caught up',
  )
}

describe('model: replicas converge on what their user may read', () => {
  for (const seed of (process.env.MODEL_SEEDS ?? '1,2,3,4').split(',').map(Number)) {
    it(`seed ${seed}`, { timeout: 120_000 }, async () => {
      const r = rng(seed)
      await app.db.pool.query('UPDATE sync_clients SET is_active = false') // earlier seeds' clients pin nothing
      const users = [randomUUID(), randomUUID(), randomUUID()]
      const replicas = [await replica(users[0] as string), await replica(users[1] as string)]
      for (const rep of replicas) await rep.snapshot()
      // users[0] on a second device that follows the live stream with frames.
      const streamed = await replica(users[0] as string)
      await streamed.snapshot()
      await streamed.open(2)
      let late: Awaited<ReturnType<typeof replica>> | undefined
      for (let i = 0; i < 150; i++) {
        await step(users, r)
        const x = r()
        const rep = replicas[Math.floor(r() * replicas.length)] as Awaited<ReturnType<typeof replica>>
        if (x < 0.3) await rep.pull(1 + Math.floor(r() * 4), 1 + Math.floor(r() * 3))
        else if (x < 0.35) await app.engine.runCompaction()
        else if (x < 0.4) {
          // A client gone stale: compaction no longer waits for it, and it must notice (snapshot_required).
          await app.db.pool.query('UPDATE sync_clients SET is_active = (client_id = $1) WHERE client_id = ANY($2)', [
            rep.clientId,
            [...replicas, streamed].map((x) => x.clientId).filter(() => r() < 0.5),
          ])
          await Promise.all([app.engine.runCompaction(), rep.pull(1 + Math.floor(r() * 4), 2)])
        }
        if (r() < 0.4) await streamed.tick(1 + Math.floor(r() * 4))
        if (i === 60) {
          late = await replica(users[2] as string)
          await late.snapshot()
          replicas.push(late)
        }
      }
      await caughtUp()
      // The stream first: what frames (or the pulls their pokes caused) brought, before any other pull repairs it.
      await streamed.tick(3)
      console.log(
        'STATS',
        seed,
        streamed.frames(),
        replicas.map((x) => x.snapshots()),
        streamed.snapshots(),
      )
      const want0 = await truth(streamed.user)
      const got0 = streamed.live()
      expect([...got0.keys()].sort(), `frames applied: ${streamed.frames()}`).toEqual([...want0.keys()].sort())
      for (const [k, v] of want0) expect(got0.get(k), k).toEqual(v)
      for (const rep of replicas) await rep.pull(1 + Math.floor(r() * 4))
      for (const rep of replicas) {
        const want = await truth(rep.user)
        const got = rep.live()
        expect([...got.keys()].sort()).toEqual([...want.keys()].sort())
        for (const [k, v] of want) expect(got.get(k), k).toEqual(v)
      }
    })
  }
})
