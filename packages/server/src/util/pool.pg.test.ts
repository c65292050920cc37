import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Logger } from './log.js'
import { guardPool } from './pool.js'

// A pool client whose backend dies (pg_terminate_backend, a restart) emits 'error'; with no listener on it the
// process crashes (vitest reports the uncaught error and fails the run). guardPool must cover every client the
// pool hands out, including those it opened before it was guarded.

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
})
afterAll(async () => {
  await db?.drop()
})

/** A pool like an application's: used before it is handed to the engine, which guards it. */
function guarded(before: (pool: pg.Pool) => Promise<void>) {
  const warnings: string[] = []
  const logger: Logger = { debug() {}, info() {}, warn: (_o, msg) => warnings.push(msg ?? ''), error() {} }
  const pool = new pg.Pool({ connectionString: db.url, max: 3 })
  pool.on('error', () => {})
  return {
    pool,
    warnings,
    async start() {
      await before(pool)
      guardPool(pool, logger)
    },
  }
}

/** Terminates the client's backend and waits until its connection is gone and the loss was logged. */
async function kill(client: pg.PoolClient, warnings: string[]): Promise<void> {
  const pid = (client as unknown as { processID: number }).processID
  await db.pool.query('SELECT pg_terminate_backend($1)', [pid])
  for (let i = 0; i < 500 && warnings.length === 0; i++) await new Promise((r) => setTimeout(r, 10))
  expect(warnings).toContain('database connection error')
}

it('a client opened before the pool was guarded, idle then, is guarded once checked out', async () => {
  const p = guarded(async (pool) => {
    await pool.query('SELECT 1')
  })
  await p.start()
  // The pool hands out its idle client again (the one opened before the guard).
  const client = await p.pool.connect()
  expect(p.pool.totalCount).toBe(1)
  // Held while idle (no query under way), as the WAL consumer holds a batch's connection between statements.
  await kill(client, p.warnings)
  client.release(true)
  // The pool keeps working (a new connection).
  expect((await p.pool.query<{ one: number }>('SELECT 1 AS one')).rows[0]?.one).toBe(1)
  await p.pool.end()
})

it('a client checked out while the pool was guarded, and one opened after, are guarded', async () => {
  let held: pg.PoolClient | undefined
  const p = guarded(async (pool) => {
    held = await pool.connect()
  })
  await p.start()
  const later = await p.pool.connect()
  await kill(held as pg.PoolClient, p.warnings)
  held?.release(true)
  p.warnings.length = 0
  // Dies in the middle of a statement: the statement rejects, and the connection's end is logged too.
  const query = later.query('SELECT pg_sleep(30)')
  const failed = expect(query).rejects.toThrow()
  for (let i = 0; i < 500; i++) {
    const { rows } = await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'`)
    if (rows.length > 0) break
    await new Promise((r) => setTimeout(r, 10))
  }
  await kill(later, p.warnings)
  await failed
  later.release(true)
  await p.pool.end()
})
