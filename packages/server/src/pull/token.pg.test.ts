import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createEngine, type Engine } from '../engine/engine.js'

// One pool connection, so every statement the engine prepares lands on the connection counted below.
let app: TestApp
let pool: pg.Pool
let engine: Engine
beforeAll(async () => {
  app = await createTestApp({ seed: true })
  pool = new pg.Pool({ connectionString: app.db.url, max: 1 })
  engine = await createEngine({ pool, registry: app.engine.ctx.registry, migrate: false })
})
afterAll(async () => {
  await engine?.close()
  await pool?.end()
  await app?.close()
})

it('DDL elsewhere in the database (a new epoch) prepares no new pull statements: the token is a parameter', async () => {
  expect(engine.ctx.contracts.watchingDdl).toBe(true)
  const user = randomUUID()
  const reg = await engine.register(user, {
    client_id: 'c',
    platform: 'test',
    app_version: '1.0.0',
    schema_version: 0,
    schema_hash: '',
  })
  const pair = { schema_version: reg.schema_version, schema_hash: reg.schema_hash }
  const snap = await engine.snapshot(user, { client_id: 'c', ...pair })
  const pull = () => engine.pull(user, { client_id: 'c', checkpoint: snap.checkpoint, ...pair })
  const prepared = async () =>
    (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_statements')).rows[0]?.n
  for (let i = 0; i < 3; i++) await pull()
  const before = await prepared()
  for (let i = 0; i < 10; i++) {
    await app.db.pool.query(`CREATE TABLE elsewhere_${i} (a int)`)
    for (let j = 0; j < 3; j++) await pull()
  }
  expect(await prepared()).toBe(before)
})
