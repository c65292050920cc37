import { createAppRolePool, createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { Registry } from '../registry/registry.js'
import { ensureTableIndexes, tableIndexes } from './indexes.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(`
    CREATE TABLE a (id uuid PRIMARY KEY, owner_id text, updated_at timestamptz, deleted_at timestamptz);
    CREATE TABLE b (id bigint PRIMARY KEY, owner_id text, updated_at timestamptz, deleted_at timestamptz);
    CREATE INDEX mine_b ON b (owner_id, id, updated_at);
    CREATE TABLE c (id bigint PRIMARY KEY, a_id uuid, updated_at timestamptz, deleted_at timestamptz);`)
})
afterAll(async () => {
  await db.drop()
})

function registry(): Registry {
  const r = new Registry()
  r.register({ tableName: 'a', ownerColumn: 'owner_id' })
  r.register({ tableName: 'b', ownerColumn: 'owner_id' })
  r.register({ tableName: 'c', parentTable: 'a', parentFkColumn: 'a_id', dependencies: ['a'] })
  r.register({ tableName: 'not_yet', ownerColumn: 'owner_id' })
  r.validate()
  return r
}

it('owner tables get an (owner, id) index unless one already leads with those columns; re-runs change nothing', async () => {
  expect(tableIndexes(registry()).map((ix) => ix.sql({ concurrently: true }))).toEqual([
    'CREATE INDEX CONCURRENTLY IF NOT EXISTS "sync_a_owner_id_id" ON "a" ("owner_id", "id")',
    'CREATE INDEX CONCURRENTLY IF NOT EXISTS "sync_b_owner_id_id" ON "b" ("owner_id", "id")',
    'CREATE INDEX CONCURRENTLY IF NOT EXISTS "sync_not_yet_owner_id_id" ON "not_yet" ("owner_id", "id")',
  ])
  const [first, second] = await Promise.all([
    ensureTableIndexes(db.pool, registry()),
    ensureTableIndexes(db.pool, registry()),
  ])
  expect([first, second].flatMap((r) => r.created)).toEqual(['sync_a_owner_id_id'])
  expect(first.covered.length + second.covered.length).toBe(3)
  expect(first.missingTables).toEqual(['not_yet'])
  const again = await ensureTableIndexes(db.pool, registry())
  expect(again).toEqual({ created: [], covered: ['a', 'b'], missingTables: ['not_yet'], failed: [] })
  const { rows } = await db.pool.query<{ indexname: string; indexdef: string }>(
    `SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('a', 'b', 'c') AND indexname NOT LIKE '%pkey' ORDER BY 1`,
  )
  expect(rows.map((r) => r.indexname)).toEqual(['mine_b', 'sync_a_owner_id_id'])
})

it('long table names make valid, distinct index names within 63 bytes', () => {
  const r = new Registry()
  const long = 'x'.repeat(60)
  r.register({ tableName: `${long}1`, ownerColumn: 'owner_id' })
  r.register({ tableName: `${long}2`, ownerColumn: 'owner_id' })
  const names = tableIndexes(r).map((ix) => ix.name)
  expect(names.every((n) => Buffer.byteLength(n) <= 63)).toBe(true)
  expect(new Set(names).size).toBe(2)
})

it('a role that does not own the table gets the statement to run, not an error', async () => {
  await db.pool.query(
    `CREATE TABLE d (id bigint PRIMARY KEY, owner_id text, updated_at timestamptz, deleted_at timestamptz)`,
  )
  const appPool = await createAppRolePool(db) // neither superuser nor the owner of d
  try {
    const r = new Registry()
    r.register({ tableName: 'd', ownerColumn: 'owner_id' })
    const res = await ensureTableIndexes(appPool, r)
    expect(res.created).toEqual([])
    expect(res.failed.map((f) => [f.name, f.sql])).toEqual([
      ['sync_d_owner_id_id', 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "sync_d_owner_id_id" ON "d" ("owner_id", "id")'],
    ])
    expect(res.failed[0]?.error).toMatch(/owner/)
  } finally {
    await appPool.end()
  }
})
