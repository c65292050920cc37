import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { readChangelog, setupNorthwind, waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ColumnCatalog } from '../buckets/catalog.js'
import { BucketResolver } from '../buckets/resolver.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { BatchApplier, type PreparedBatch, type RowChange, type WalTransaction } from './apply.js'
import { ensurePublication, ensureReplicaIdentityFull, ensureSlot, startWalConsumer } from './index.js'

let db: TestDatabase
let registry: Registry
beforeAll(async () => {
  db = await createTestDatabase()
  registry = await setupNorthwind(db.pool)
  await ensurePublication(db.pool, registry, 'synchro_pub')
  await ensureReplicaIdentityFull(db.pool, registry)
})
afterAll(async () => {
  await db?.drop()
})

const q = (text: string, params: unknown[] = []) => db.pool.query(text, params)

/** A random backlog touching parents and descendants across many small transactions (a TRUNCATE included). */
async function workload(): Promise<void> {
  const users = Array.from({ length: 3 }, () => randomUUID())
  const pick = <T>(a: T[]): T => a[Math.floor(Math.random() * a.length)] as T
  const orders: string[] = []
  const details: string[] = []
  const client = await db.pool.connect()
  try {
    for (let i = 0; i < 160; i++) {
      await client.query('BEGIN')
      const steps = 1 + Math.floor(Math.random() * 3)
      for (let s = 0; s < steps; s++) {
        const r = Math.random()
        if (orders.length < 4 || r < 0.2) {
          const { rows } = await client.query('INSERT INTO orders (user_id) VALUES ($1) RETURNING id', [pick(users)])
          orders.push(rows[0].id)
        } else if (r < 0.35) {
          const { rows } = await client.query('INSERT INTO order_details (order_id) VALUES ($1) RETURNING id', [
            pick(orders),
          ])
          details.push(rows[0].id)
          await client.query('INSERT INTO detail_notes (detail_id) VALUES ($1)', [rows[0].id])
        } else if (r < 0.5) {
          await client.query('UPDATE orders SET user_id = $2 WHERE id = $1', [pick(orders), pick(users)])
        } else if (r < 0.6) {
          await client.query('UPDATE orders SET total_cents = total_cents + 1 WHERE id = $1', [pick(orders)])
        } else if (r < 0.67) {
          await client.query(
            'UPDATE orders SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END WHERE id = $1',
            [pick(orders)],
          )
        } else if (r < 0.75 && details.length > 0) {
          await client.query(
            'UPDATE order_details SET deleted_at = CASE WHEN deleted_at IS NULL THEN now() END WHERE id = $1',
            [pick(details)],
          )
        } else if (r < 0.82 && details.length > 0) {
          await client.query('UPDATE order_details SET order_id = $2 WHERE id = $1', [pick(details), pick(orders)])
        } else if (r < 0.87 && details.length > 0) {
          await client.query('DELETE FROM order_details WHERE id = $1', [pick(details)])
        } else if (r < 0.95) {
          await client.query('INSERT INTO docs (tag) VALUES ($1)', [pick(['a', 'b', null])])
        } else if (r < 0.97) {
          await client.query('TRUNCATE docs')
        } else {
          await client.query('INSERT INTO tagged (team) VALUES ($1)', [pick(['x', 'y', 'boom'])])
        }
      }
      await client.query('COMMIT')
    }
  } finally {
    client.release()
  }
}

/** Runs a consumer on `slot` until a marker row is captured; returns how many batches were pipelined. */
async function consume(slot: string, pipelining: boolean): Promise<{ pipelined: number; batches: number }> {
  let pipelined = 0
  let batches = 0
  const noop = () => {}
  const consumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: slot,
    batchMaxEvents: 6,
    pipelining,
    logger: {
      info: noop,
      warn: noop,
      error: noop,
      debug: (o: unknown) => {
        const b = o as { pipelined?: boolean; changelogRows?: number }
        if (b.changelogRows === undefined) return
        batches++
        if (b.pipelined) pipelined++
      },
    },
  })
  try {
    const marker = randomUUID()
    await q('INSERT INTO products (id) VALUES ($1)', [marker])
    await waitFor(async () => ((await readChangelog(db.pool, marker)).length > 0 ? true : undefined), 30_000, 'marker')
  } finally {
    await consumer.stop()
  }
  return { pipelined, batches }
}

async function snapshot() {
  const cl = (await readChangelog(db.pool)).map((e) => `${e.bucket}|${e.table}|${e.id}|${e.op}`)
  const edges = (await q('SELECT table_name, record_id, bucket_id FROM sync_bucket_edges ORDER BY 1, 2, 3')).rows.map(
    (r) => `${r.table_name}|${r.record_id}|${r.bucket_id}`,
  )
  const failures = (
    await q('SELECT table_name, record_id, operation, error_text FROM sync_rule_failures ORDER BY id')
  ).rows.map((r) => `${r.table_name}|${r.record_id}|${r.operation}|${r.error_text}`)
  return { cl, edges, failures }
}

describe('pipelining', () => {
  it('a pipelined consumer writes exactly what a serial one writes from the same WAL', async () => {
    // Two slots see the same WAL; each consumer runs on empty sync tables.
    await ensureSlot(db.pool, 'pipe_on')
    await ensureSlot(db.pool, 'pipe_off')
    await workload()
    const on = await consume('pipe_on', true)
    const a = await snapshot()
    await q('TRUNCATE sync_changelog, sync_bucket_edges, sync_rule_failures')
    const off = await consume('pipe_off', false)
    const b = await snapshot()
    expect(on.pipelined).toBeGreaterThan(5)
    expect(off.pipelined).toBe(0)
    expect(a.cl.length).toBeGreaterThan(300)
    // Marker rows differ (one per run); everything else must be identical: per (bucket, record) the same ops, and
    // the same global order except among the rows of one TRUNCATE (emitted in no particular record order).
    const strip = (x: string[]) => x.filter((l) => !l.includes('products|'))
    const grouped = (x: string[]) => {
      const m = new Map<string, string[]>()
      for (const l of strip(x)) {
        const k = l.slice(0, l.lastIndexOf('|'))
        m.set(k, [...(m.get(k) ?? []), l.slice(l.lastIndexOf('|') + 1)])
      }
      return Object.fromEntries([...m].sort())
    }
    expect(grouped(a.cl)).toEqual(grouped(b.cl))
    const noDocs = (x: string[]) => strip(x).filter((l) => !l.includes('|docs|'))
    expect(noDocs(a.cl)).toEqual(noDocs(b.cl))
    expect(strip(a.edges)).toEqual(strip(b.edges))
    expect(a.failures).toEqual(b.failures)
    await q('SELECT pg_drop_replication_slot(s) FROM unnest(ARRAY[$1, $2]) s', ['pipe_on', 'pipe_off'])
  }, 120_000)
})

describe('BatchApplier: a batch prepared ahead', () => {
  let applier: BatchApplier
  let orders: ResolvedTable
  const slot = 'applier_unit'
  const U = randomUUID()
  const V = randomUUID()
  const W = randomUUID()
  const change = (kind: RowChange['kind'], id: string, owner: string, old?: string): RowChange => ({
    kind,
    table: orders,
    id,
    row: { id, user_id: owner, deleted_at: null },
    oldRow: old ? { id, user_id: old, deleted_at: null } : null,
    jsonColumns: new Set(),
  })
  const txn = (endLsn: bigint, ...changes: RowChange[]): WalTransaction => ({ endLsn, changes })
  /** Applies `first` and, while it is being written, prepares `next` on top of it. */
  async function applyPreparing(first: WalTransaction[], next: WalTransaction[]) {
    let ahead: Promise<PreparedBatch | undefined> | undefined
    const res = await applier.apply(first, {
      onReady: (b) => {
        ahead = applier.prepare(next, b)
      },
    })
    return { res, prepared: await ahead }
  }
  const ops = async (id: string) => (await readChangelog(db.pool, id)).map((e) => [e.bucket, e.op])

  beforeAll(async () => {
    orders = registry.get('orders') as ResolvedTable
    applier = new BatchApplier(db.pool, new BucketResolver(registry, await ColumnCatalog.load(db.pool, registry)), slot)
  })

  it('builds on the edges of the batch still being written', async () => {
    const x = randomUUID()
    const t2 = [txn(200n, change('update', x, V, U))]
    const { prepared } = await applyPreparing([txn(100n, change('insert', x, U))], t2)
    expect(prepared).toBeDefined()
    const res = await applier.apply(t2, { prepared })
    expect(res.pipelined).toBe(true)
    expect(await ops(x)).toEqual([
      [`user:${U}`, 1],
      [`user:${V}`, 1],
      [`user:${U}`, 3],
    ])
    const { rows } = await q('SELECT bucket_id FROM sync_bucket_edges WHERE record_id = $1', [x])
    expect(rows).toEqual([{ bucket_id: `user:${V}` }])
  })

  it('is recomputed under the lock when someone else moved the stored LSN; covered transactions are skipped', async () => {
    const x = randomUUID()
    const next = [txn(400n, change('update', x, W, V)), txn(500n, change('update', x, W, W))]
    const { prepared } = await applyPreparing([txn(300n, change('insert', x, V))], next)
    expect(prepared).toBeDefined()
    // Another applier (a stale leader) committed up to 400 meanwhile.
    await q('UPDATE sync_wal_position SET confirmed_lsn = 400 WHERE slot_name = $1', [slot])
    const res = await applier.apply(next, { prepared })
    expect(res.pipelined).toBe(false)
    expect(res.skippedTransactions).toBe(1)
    expect(res.lsn).toBe(500n)
    // Only the 500 transaction was applied, against the edges in the database (user:V).
    expect(await ops(x)).toEqual([
      [`user:${V}`, 1],
      [`user:${W}`, 1],
      [`user:${V}`, 3],
    ])
  })

  it('an edge created behind its back makes the batch recompute (op 2, no duplicate-key failure)', async () => {
    const x = randomUUID()
    const y = randomUUID()
    const next = [txn(700n, change('insert', y, U))]
    const { prepared } = await applyPreparing([txn(600n, change('insert', x, U))], next)
    expect(prepared).toBeDefined()
    await q(`INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id) VALUES ('orders', $1, $2)`, [
      y,
      `user:${U}`,
    ])
    const res = await applier.apply(next, { prepared })
    expect(res.pipelined).toBe(false)
    expect(await ops(y)).toEqual([[`user:${U}`, 2]])
  })
})
