/**
 * Bootstrap progress against the real server: a snapshot of several tables reports rows so far and tables done, the
 * two measures an app shows as a progress bar.
 */
import { randomUUID } from 'node:crypto'
import { Registry } from '@synchro/server'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { cleanupTempDirs, makeClient, startSynced } from '../test/helpers.js'
import { NORTHWIND_DDL, NORTHWIND_SEED, NORTHWIND_TABLES } from '../test/northwind.js'
import { type SyncStack, startSyncStack } from '../test/sync-stack.js'
import type { SynchroClient } from './client.js'
import type { SyncProgress } from './sync/engine.js'

let db: TestDatabase
let stack: SyncStack
let client: SynchroClient | undefined

beforeAll(async () => {
  db = await createTestDatabase('synchro_client_progress')
  await db.pool.query(NORTHWIND_DDL)
  await db.pool.query(NORTHWIND_SEED)
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  stack = await startSyncStack(db, registry, 'client_progress')
}, 120_000)

afterAll(async () => {
  await client?.close().catch(() => {})
  await stack?.close()
  await db?.drop()
  cleanupTempDirs()
}, 60_000)

it('a bootstrap snapshot reports rows so far and tables done until every table is complete', async () => {
  const user = randomUUID()
  await db.pool.query(
    `WITH o AS (
       INSERT INTO orders (user_id, ship_address) SELECT $1, 'addr ' || g FROM generate_series(1, 1200) g RETURNING id
     )
     INSERT INTO order_details (order_id, product_name) SELECT id, 'Widget A' FROM o`,
    [user],
  )
  client = makeClient(stack.url, { userID: user, clientID: `client-${randomUUID()}`, snapshotPageSize: 500 })
  const seen: SyncProgress[] = []
  client.onStatusChange((e) => {
    if (e.progress?.phase === 'snapshot') seen.push(e.progress)
  })
  await startSynced(client)

  const total = 1200 + 1200 + 5 + 3 // orders, details, the global products and categories
  expect(seen[0]).toEqual({ phase: 'snapshot', rows: 0, pages: 0, tablesDone: 0, tablesTotal: 4 })
  expect(seen.at(-1)).toMatchObject({ rows: total, tablesDone: 4, tablesTotal: 4 })
  for (let i = 1; i < seen.length; i++) {
    expect(seen[i]!.rows).toBeGreaterThanOrEqual(seen[i - 1]!.rows)
    expect(seen[i]!.tablesDone).toBeGreaterThanOrEqual(seen[i - 1]!.tablesDone!)
  }
  // Tables complete one by one, not all at the end.
  const partial = seen.filter((p) => p.tablesDone! > 0 && p.tablesDone! < 4)
  expect(partial.length).toBeGreaterThan(0)
  expect((await client.queryOne<{ n: number }>('SELECT count(*) AS n FROM order_details'))?.n).toBe(1200)
}, 120_000)
