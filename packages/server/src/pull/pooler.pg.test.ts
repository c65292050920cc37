import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../engine/engine.js'

// Behind a transaction-mode pooler (pgbouncer) a PREPAREd page statement stays on the server connection that ran
// it: a later transaction may run on another one, where it does not exist. Simulated on one real connection by
// deallocating behind the engine's back. Its own file: the engine stops preparing for the rest of the process.
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

describe('prepared page statements behind a pooler', () => {
  it('a prepared statement gone missing costs nothing: the pull is served, and nothing is prepared again', async () => {
    const user = randomUUID()
    const reg = await engine.register(user, {
      client_id: 'c',
      platform: 't',
      app_version: '1',
      schema_version: 0,
      schema_hash: '',
    })
    const pair = { schema_version: reg.schema_version, schema_hash: reg.schema_hash }
    const snap = await engine.snapshot(user, { client_id: 'c', ...pair })
    const checkpoint = snap.checkpoint
    const change = async (address: string) => {
      const { rows } = await app.db.pool.query(
        `INSERT INTO orders (user_id, ship_address) VALUES ($1, $2) RETURNING id::text`,
        [user, address],
      )
      await app.db.pool.query(
        `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 'orders', $2, 1)`,
        [`user:${user}`, rows[0].id],
      )
    }
    const pull = () => engine.pull(user, { client_id: 'c', checkpoint, ...pair })
    await change('first')
    await pull() // served, then PREPAREd on the (only) connection
    await pull() // served by EXECUTE
    const prepared = async () =>
      Number((await pool.query(`SELECT count(*)::int AS n FROM pg_prepared_statements`)).rows[0].n)
    expect(await prepared()).toBeGreaterThan(0)
    await pool.query('DEALLOCATE ALL') // what another server connection behind a pooler looks like
    await change('second')
    const p = await pull()
    expect(p.changes.map((c) => c.data.ship_address).sort()).toEqual(['first', 'second'])
    await pull()
    expect(await prepared()).toBe(0)
  })
})
