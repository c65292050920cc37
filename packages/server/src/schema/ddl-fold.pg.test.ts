import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../engine/engine.js'
import { Registry } from '../registry/registry.js'
import { foldDdlEpoch } from './ddl-watch.js'

// Review (session 7): folds from several engines at once, while short-lived sessions run DDL and exit, keep the sum
// exact (every committed DDL counted once), and leave one base row.
let db: TestDatabase
let engine: Engine
beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query(
    'CREATE TABLE notes (id uuid PRIMARY KEY, user_id text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)',
  )
  engine = await createEngine({
    pool: db.pool,
    registry: new Registry().register({ tableName: 'notes', bucketByColumn: 'user_id' }),
  })
})
afterAll(async () => {
  await engine?.close()
  await db?.drop()
})

const sum = async () =>
  BigInt(
    (await db.pool.query<{ s: string }>('SELECT coalesce(sum(n), 0)::text AS s FROM sync_ddl_epoch')).rows[0]?.s ?? 0,
  )

async function ddlSession(i: number): Promise<void> {
  const c = new pg.Client({ connectionString: db.url })
  await c.connect()
  await c.query(`CREATE TABLE fold_${i} (a int)`)
  await c.query(`DROP TABLE fold_${i}`)
  await c.end()
}

describe('DDL counter fold under concurrency (review)', () => {
  it('concurrent folds and DDL sessions: the sum counts every DDL exactly once; one base row', async () => {
    const start = await sum()
    const folds = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: db.url, max: 1 }))
    try {
      let folded = 0
      const sessions = 24
      const work: Promise<unknown>[] = []
      for (let i = 0; i < sessions; i++) {
        work.push(ddlSession(i))
        if (i % 3 === 0) for (const p of folds) work.push(foldDdlEpoch(p).then((n) => (folded += n)))
      }
      await Promise.all(work)
      await new Promise((r) => setTimeout(r, 300)) // sessions exit
      for (const p of folds) folded += await foldDdlEpoch(p)
      expect(await sum()).toBe(start + BigInt(sessions * 2))
      const rows = await db.pool.query<{ pid: number }>('SELECT pid FROM sync_ddl_epoch')
      expect(rows.rows.filter((r) => r.pid === 0)).toHaveLength(1)
      expect(folded).toBeGreaterThan(0) // not one per session: a session may reuse an exited one's pid (and row)
    } finally {
      await Promise.all(folds.map((p) => p.end()))
    }
  })
})
