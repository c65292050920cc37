import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { queryNamed } from './statements.js'

// Its own file: a statement gone missing turns prepared statements off for the rest of the process.
let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
})
afterAll(async () => {
  await db?.drop()
})

it('queryNamed parses once per connection, and falls back to an unnamed statement when the name went missing', async () => {
  const c = await db.pool.connect()
  try {
    const named = () =>
      c.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE NOT from_sql`)
    const text = 'SELECT $1::int + 1 AS v'
    expect(await queryNamed<{ v: number }>(c, text, [1])).toEqual([{ v: 2 }])
    expect(await queryNamed<{ v: number }>(c, text, [2])).toEqual([{ v: 3 }])
    expect((await named()).rows[0]?.n).toBe(1)
    // Behind a transaction-mode pooler the next server connection does not know the name: simulated by deallocating
    // it behind node-pg's back (node-pg still believes it is parsed, so it sends only Bind/Execute).
    await c.query('DEALLOCATE ALL')
    expect(await queryNamed<{ v: number }>(c, text, [3])).toEqual([{ v: 4 }])
    expect(await queryNamed<{ v: number }>(c, text, [4])).toEqual([{ v: 5 }])
    expect((await named()).rows[0]?.n).toBe(0) // nothing named again: prepared statements are off
  } finally {
    c.release()
  }
})
