import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { readChangelog, setupNorthwind, waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Registry } from '../registry/registry.js'
import {
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  startWalConsumer,
  type WalConsumer,
} from './index.js'

let db: TestDatabase
let registry: Registry
const consumers: WalConsumer[] = []

beforeAll(async () => {
  db = await createTestDatabase()
  registry = await setupNorthwind(db.pool)
  await ensurePublication(db.pool, registry, 'synchro_pub')
  await ensureReplicaIdentityFull(db.pool, registry)
  await ensureSlot(db.pool, db.name) // slots are cluster-wide: one per test database
})
afterAll(async () => {
  await Promise.all(consumers.map((c) => c.stop()))
  await db?.drop()
})

const start = () => {
  const c = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: db.name,
    leaderRetryMs: 100,
    statusIntervalMs: 200,
  })
  consumers.push(c)
  return c
}

async function writeOrders(n: number, owner: string): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const id = randomUUID()
    await db.pool.query('INSERT INTO orders (id, user_id) VALUES ($1, $2)', [id, owner])
    ids.push(id)
  }
  return ids
}

async function waitCaptured(ids: string[]): Promise<void> {
  await waitFor(
    async () => {
      const { rows } = await db.pool.query(
        'SELECT count(DISTINCT record_id)::int AS n FROM sync_changelog WHERE record_id = ANY($1)',
        [ids],
      )
      return rows[0].n === ids.length ? true : undefined
    },
    20_000,
    'orders captured',
  )
}

it('two consumers: exactly one leads; killing its lock session or stopping it hands over with nothing lost', async () => {
  const a = start()
  const b = start()
  await waitFor(async () => (a.status().running || b.status().running ? true : undefined), 20_000, 'a leader')
  const [leader, other] = a.status().leader ? [a, b] : [b, a]
  expect(leader.status().leader).toBe(true)
  expect(other.status()).toMatchObject({ leader: false, running: false })

  const owner = randomUUID()
  const ids = await writeOrders(20, owner)
  await waitCaptured(ids)
  expect(other.status().leader).toBe(false)

  // Kill the leader's lock session: it must step down; someone leads again and nothing written meanwhile is lost.
  const { rows } = await db.pool.query(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  )
  expect(rows).toHaveLength(1)
  await db.pool.query('SELECT pg_terminate_backend($1)', [rows[0].pid])
  const during = await writeOrders(20, owner)
  await waitFor(async () => (a.status().running !== b.status().running ? true : undefined), 20_000, 'one leader again')
  await waitCaptured(during)

  // Stop whoever leads now; the other takes over within seconds.
  const current = a.status().leader ? a : b
  const standby = current === a ? b : a
  await current.stop()
  const after = await writeOrders(20, owner)
  await waitFor(async () => (standby.status().running ? true : undefined), 10_000, 'standby takes over')
  await waitCaptured(after)

  // Exactly once: one op-1 row per order, in user:<owner>, nothing else.
  const all = [...ids, ...during, ...after]
  const log = (await readChangelog(db.pool)).filter((e) => e.table === 'orders')
  expect(log).toHaveLength(all.length)
  expect(new Set(log.map((e) => e.id))).toEqual(new Set(all))
  expect(log.every((e) => e.op === 1 && e.bucket === `user:${owner}`)).toBe(true)
})
