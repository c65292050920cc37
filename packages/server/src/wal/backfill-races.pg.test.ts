import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import {
  northwindRegistry,
  readChangelog,
  setupNorthwind,
  WAL_CONSUMER_WORKER,
  waitFor,
} from '@synchro/test-harness/wal-fixtures'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Registry } from '../registry/registry.js'
import { startWalConsumer, type WalConsumer } from './index.js'

// The edge backfill (rows written before the capture started get their bucket edges) while the application writes
// the same rows, and when the consumer is killed halfway.

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '../../../..')

let db: TestDatabase
const USERS = Array.from({ length: 4 }, () => randomUUID())
/** Orders written before the capture started: id → owner. */
const early = new Map<string, string>()
const ITEMS = 3000

beforeAll(async () => {
  db = await createTestDatabase()
  await setupNorthwind(db.pool)
  for (let i = 0; i < 1500; i++) early.set(randomUUID(), USERS[i % USERS.length] as string)
  await q('INSERT INTO orders (id, user_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])', [
    [...early.keys()],
    [...early.values()],
  ])
  await q('INSERT INTO app.items (owner_id) SELECT ($1::uuid[])[1 + g % 4] FROM generate_series(1, $2::int) g', [
    USERS,
    ITEMS,
  ])
})

afterAll(async () => {
  await db?.drop()
})

const q = (text: string, params: unknown[] = []) => db.pool.query(text, params)
const pick = <T>(a: readonly T[]): T => a[Math.floor(Math.random() * a.length)] as T

async function settle(): Promise<void> {
  const id = randomUUID()
  await q(`INSERT INTO products (id, name) VALUES ($1, 'marker')`, [id])
  await waitFor(async () => ((await readChangelog(db.pool, id)).length > 0 ? true : undefined), 30_000, 'marker')
}

/** The application: moves, edits, soft and hard deletes and inserts of orders, mostly ones written before. */
class Writer {
  readonly orders = new Map<string, { owner: string; deleted: boolean }>()
  /** The ids written before, in key order. */
  readonly #sorted = [...early.keys()].sort()
  writes = 0

  constructor() {
    for (const [id, owner] of early) this.orders.set(id, { owner, deleted: false })
  }

  async step(): Promise<void> {
    const client = await db.pool.connect()
    try {
      // Half the rows written are the next keys the backfill reads (after the last key it applied).
      const { rows } = await client.query(`SELECT after_key FROM sync_edge_backfill WHERE table_name = 'orders'`)
      const after = (rows[0]?.after_key as string | null | undefined) ?? ''
      const next = this.#sorted.filter((id) => id > after && this.orders.has(id)).slice(0, 25)
      await client.query('BEGIN')
      for (let s = 1 + Math.floor(Math.random() * 3); s > 0; s--) await this.#op(client, next)
      await client.query('COMMIT')
      this.writes++
    } finally {
      client.release()
    }
  }

  async #op(client: pg.PoolClient, next: string[]): Promise<void> {
    const r = Math.random()
    const near = next.filter((id) => this.orders.has(id))
    const ids = near.length > 0 && Math.random() < 0.5 ? near : [...this.orders.keys()]
    if (r < 0.15) {
      const id = randomUUID()
      const owner = pick(USERS)
      await client.query('INSERT INTO orders (id, user_id) VALUES ($1, $2)', [id, owner])
      this.orders.set(id, { owner, deleted: false })
      return
    }
    const id = pick(ids)
    const o = this.orders.get(id) as { owner: string; deleted: boolean }
    if (r < 0.5) {
      o.owner = pick(USERS.filter((u) => u !== o.owner))
      await client.query('UPDATE orders SET user_id = $2 WHERE id = $1', [id, o.owner])
    } else if (r < 0.65) {
      // Several rows at once, some of them in the chunk being read.
      const some = [id, ...Array.from({ length: 4 }, () => pick(ids))]
      const owner = pick(USERS)
      await client.query('UPDATE orders SET user_id = $2 WHERE id = ANY($1::uuid[])', [some, owner])
      for (const x of some) (this.orders.get(x) as { owner: string }).owner = owner
    } else if (r < 0.78) {
      await client.query('UPDATE orders SET total_cents = total_cents + 1 WHERE id = $1', [id])
    } else if (r < 0.9) {
      o.deleted = !o.deleted
      await client.query(`UPDATE orders SET deleted_at = ${o.deleted ? 'now()' : 'NULL'} WHERE id = $1`, [id])
    } else {
      await client.query('DELETE FROM orders WHERE id = $1', [id])
      this.orders.delete(id)
    }
  }
}

/**
 * What a device that took the `user:*` buckets by snapshot before the capture started holds after applying every
 * changelog entry of orders in order (op 1/2 adds, op 3 removes): per bucket, the ids.
 */
async function replicas(): Promise<Map<string, Set<string>>> {
  const held = new Map(USERS.map((u) => [`user:${u}`, new Set<string>()]))
  for (const [id, owner] of early) held.get(`user:${owner}`)?.add(id)
  for (const e of await readChangelog(db.pool)) {
    if (e.table !== 'orders') continue
    const h = held.get(e.bucket)
    if (e.op === 3) h?.delete(e.id)
    else h?.add(e.id)
  }
  return held
}

it('rows moved, edited and deleted while the backfill reads them end where they are, on replicas and in edges', async () => {
  const registry = new Registry()
    .register({ tableName: 'orders', ownerColumn: 'user_id' })
    .register({ tableName: 'products', pushPolicy: 'disabled' })
  registry.validate()
  const writer = new Writer()
  // Chunks of 10 keys: the backfill takes many chunks, each read while the writer changes rows in and around it.
  const consumer = await running(registry, 10)
  try {
    while (consumer.status().backfilling.length > 0 || writer.writes < 200) await writer.step()
    await settle()

    const want = new Map(USERS.map((u) => [`user:${u}`, new Set<string>()]))
    for (const [id, o] of writer.orders) if (!o.deleted) want.get(`user:${o.owner}`)?.add(id)
    const held = await replicas()
    for (const [bucket, ids] of want) expect(sorted(held.get(bucket)), bucket).toEqual(sorted(ids))
    const { rows } = await q(
      `SELECT record_id AS id, string_agg(bucket_id, ',') AS b FROM sync_bucket_edges WHERE table_name = 'orders'
        GROUP BY record_id`,
    )
    const got = new Map(rows.map((r) => [r.id as string, r.b as string]))
    const expected = new Map([...writer.orders].filter(([, o]) => !o.deleted).map(([id, o]) => [id, `user:${o.owner}`]))
    expect(got.size).toBe(expected.size)
    for (const [id, b] of expected) if (got.get(id) !== b) expect({ id, edges: got.get(id) }).toEqual({ id, edges: b })

    // Every order has its edges: a TRUNCATE empties every replica.
    await q('TRUNCATE orders CASCADE')
    await settle()
    for (const [bucket, ids] of await replicas()) expect(sorted(ids), bucket).toEqual([])
  } finally {
    await consumer.stop()
  }
}, 120_000)

it('a consumer killed while backfilling resumes where it stopped: each chunk lands whole, once', async () => {
  // app.items was not registered above: its rows have no edges. The worker registers it.
  for (let round = 0; round < 3; round++) {
    const before = await progress()
    const child = spawnWorker()
    // Killed once the backfill of app.items has moved on, a little later or at once.
    await waitFor(
      async () => {
        const p = await progress()
        return p.done || (p.after !== null && p.after !== before.after) ? true : undefined
      },
      30_000,
      'backfill progress',
    )
    await new Promise((r) => setTimeout(r, Math.random() * 200))
    await kill(child)
    const p = await progress()
    // Edges exactly for the keys done, each the owner's bucket: no chunk is half written.
    const { rows } = await q(
      `SELECT count(*) FILTER (WHERE e.b IS DISTINCT FROM CASE WHEN $1::uuid IS NOT NULL AND i.id <= $1::uuid
                                                          THEN 'user:' || i.owner_id END)::int AS wrong,
              count(e.b)::int AS edged
         FROM app.items i
         LEFT JOIN (SELECT record_id, string_agg(bucket_id, ',') AS b FROM sync_bucket_edges
                     WHERE table_name = 'app.items' GROUP BY record_id) e ON e.record_id = i.id::text`,
      [p.done ? null : p.after],
    )
    if (p.done) expect(rows[0].edged).toBe(ITEMS)
    else expect(rows[0]).toEqual({ wrong: 0, edged: rows[0].edged })
    if (p.done) break
  }
  const consumer = await running(northwindRegistry(), 20)
  try {
    await waitFor(async () => (consumer.status().backfilling.length === 0 ? true : undefined), 60_000, 'backfill')
    const { rows } = await q(
      `SELECT count(*)::int AS n FROM app.items i
        WHERE (SELECT array_agg(bucket_id) FROM sync_bucket_edges e
                WHERE e.table_name = 'app.items' AND e.record_id = i.id::text) = ARRAY['user:' || i.owner_id]`,
    )
    expect(rows[0].n).toBe(ITEMS)
    expect((await progress()).done).toBe(true)
  } finally {
    await consumer.stop()
  }
}, 120_000)

/** A consumer of the test's database, once it runs (the backfill's chunks are `batchMaxEvents` keys). */
async function running(registry: Registry, batchMaxEvents: number): Promise<WalConsumer> {
  const consumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: db.name,
    statusIntervalMs: 100,
    leaderRetryMs: 50,
    batchMaxEvents,
  })
  try {
    await waitFor(async () => (consumer.status().running ? true : undefined), 20_000, 'consumer running')
  } catch (err) {
    await consumer.stop()
    throw err
  }
  return consumer
}

async function progress(): Promise<{ after: string | null; done: boolean }> {
  const { rows } = await q(`SELECT after_key AS after, done FROM sync_edge_backfill WHERE table_name = 'app.items'`)
  return rows[0] ?? { after: null, done: false }
}

function sorted(s: Set<string> | undefined): string[] {
  return [...(s ?? [])].sort()
}

function spawnWorker(): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', WAL_CONSUMER_WORKER], {
    cwd: repoRoot,
    env: { ...process.env, SYNCHRO_CRASH_DB_URL: db.url, SYNCHRO_CRASH_SLOT: db.name, SYNCHRO_CRASH_BATCH: '20' },
    stdio: ['ignore', 'ignore', 'ignore'],
  })
  return child
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}
