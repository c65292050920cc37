import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runMigrations } from '../migrations/migrations.js'
import type { ResolvedTable } from '../registry/registry.js'
import { EdgeState, textArray } from './edges.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
  await runMigrations(db.pool)
})
afterAll(async () => {
  await db.drop()
})

const awkward = ['', 'NULL', 'a,b', '{x}', ' sp ', 'q"uote', 'back\\slash', 'new\nline', 'tab\t', 'é😀', '\ud800']

it('textArray sends every id as itself, through the fast literal or pg escaping', async () => {
  const plain = ['00000000-0000-4000-8000-000000000001', 'NULL', '', 'a,b', '{x}', ' sp ', 'é😀']
  expect(typeof textArray(plain)).toBe('string')
  for (const ids of [plain, awkward, []]) {
    const { rows } = await db.pool.query<{ a: string[] }>('SELECT $1::text[] AS a', [textArray(ids)])
    // A lone surrogate cannot be stored: PostgreSQL receives U+FFFD either way.
    expect(rows[0]?.a).toEqual(ids.map((s) => s.replace('\ud800', '\ufffd')))
  }
})

it('EdgeState.load finds the edges of records with any id', async () => {
  const ids = [...awkward.slice(0, -1), 'plain']
  for (const [i, id] of ids.entries()) {
    await db.pool.query('INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id) VALUES ($1, $2, $3)', [
      't',
      id,
      `b${i}`,
    ])
  }
  const table = { tableName: 't' } as ResolvedTable
  const client = await db.pool.connect()
  try {
    for (const only of [ids, ['plain', 'NULL', 'missing']]) {
      const state = new EdgeState()
      await state.load(
        client,
        only.map((id) => ({ table, id })),
      )
      for (const id of only) {
        const i = ids.indexOf(id)
        expect([...(state.get('t', id)?.cur ?? [])]).toEqual(i < 0 ? [] : [`b${i}`])
      }
    }
  } finally {
    client.release()
  }
})
