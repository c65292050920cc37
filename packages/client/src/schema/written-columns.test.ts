import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { col, table, testSchema } from '../../test/fake-server.js'
import { cleanupTempDirs, tempDriver } from '../../test/helpers.js'
import type { SqliteDriver } from '../driver.js'
import { readPushBatch } from '../sync/push.js'
import { migrateToSchema } from './migrate.js'
import { type ClientSchema, toClientSchema } from './synced-table.js'
import { ensureLocalTables, LOCAL_TABLES_SQL } from './triggers.js'
import { nameToken, parseWritten } from './written-columns.js'

afterAll(cleanupTempDirs)

/** Names that would fool a plain substring search: quotes, commas, backslashes, one name inside another. */
const NAMES = ['a', 'a"', 'b"a', ',', 'a,', '"a"', 'x\\y', '\\', 'é', 'a b']

function schema(tables = testSchema()): ClientSchema {
  return toClientSchema({ schema_version: 1, schema_hash: 'h', server_time: '', tables })
}

const ODD = schema([
  table('odd', [...NAMES.map((n) => col(n, 'string', { db: 'text' })), col('d', 'int', { def: '7' })]),
])
const q = (n: string) => `"${n.replaceAll('"', '""')}"`

async function written(d: SqliteDriver, id: string): Promise<string[] | null> {
  const [row] = await d.all<{ w: string | null }>(
    'SELECT written_columns AS w FROM _synchro_pending_changes WHERE record_id = ?',
    [id],
  )
  return parseWritten(row?.w ?? null)
}

describe('written_columns', () => {
  it('a token round-trips and has no comma nor inner quote', () => {
    for (const n of NAMES) {
      const t = nameToken(n)
      expect(t.slice(1, -1)).not.toMatch(/[",]/)
      expect(parseWritten(`${t},`)).toEqual([n])
    }
    expect(parseWritten('')).toEqual([])
    expect(parseWritten(null)).toBeNull()
  })

  it('is the union of the columns the merged writes set, exactly, whatever the names', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    await d.transaction((tx) => migrateToSchema(tx, ODD))
    let round = 0
    await fc.assert(
      fc.asyncProperty(
        fc.subarray(NAMES),
        fc.array(fc.subarray(NAMES, { minLength: 1 }), { maxLength: 4 }),
        async (inserted, updates) => {
          const id = `r${round++}`
          await d.run(
            `INSERT INTO odd (id${inserted.map((n) => `, ${q(n)}`).join('')}) VALUES (?${inserted.map(() => ", 'v'").join('')})`,
            [id],
          )
          const expected = new Set(inserted)
          for (const [i, cols] of updates.entries()) {
            await d.run(`UPDATE odd SET ${cols.map((n) => `${q(n)} = 'u${i}'`).join(', ')} WHERE id = ?`, [id])
            for (const n of cols) expected.add(n)
          }
          expect(new Set(await written(d, id))).toEqual(expected)
          expect((await written(d, id))?.length).toBe(expected.size)
        },
      ),
      { numRuns: 60 },
    )
    await d.close()
  })

  it('an insert leaving a column at its default does not write it; unchanged values and the stamps are not writes', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    await d.transaction((tx) => migrateToSchema(tx, ODD))
    await d.run(`INSERT INTO odd (id, a) VALUES ('x', 'v')`)
    expect(await written(d, 'x')).toEqual(['a'])
    await d.run(`INSERT INTO odd (id, d) VALUES ('y', 8)`)
    expect(await written(d, 'y')).toEqual(['d'])
    await d.run(`UPDATE odd SET a = 'v', updated_at = '2030-01-01T00:00:00Z' WHERE id = 'x'`)
    expect(await written(d, 'x')).toEqual(['a'])
    await d.run(`INSERT INTO odd (id, d) VALUES ('z', 7)`)
    expect(await written(d, 'z')).toEqual([])
    await d.close()
  })

  it('an entry of an earlier SDK version stays unknown (NULL) through later writes', async () => {
    const d = await tempDriver()
    // The queue before written_columns.
    await d.exec(`CREATE TABLE _synchro_pending_changes (
      record_id TEXT NOT NULL, table_name TEXT NOT NULL, operation TEXT NOT NULL, base_updated_at TEXT,
      client_updated_at TEXT NOT NULL, attempted INTEGER NOT NULL DEFAULT 0, attempted_data TEXT,
      write_seq INTEGER NOT NULL DEFAULT 0, retry_count INTEGER NOT NULL DEFAULT 0, retry_at INTEGER,
      PRIMARY KEY (table_name, record_id))`)
    await d.run(`INSERT INTO _synchro_pending_changes (record_id, table_name, operation, client_updated_at)
      VALUES ('x', 'odd', 'update', '2026-01-01T00:00:00Z')`)
    await ensureLocalTables(d)
    await ensureLocalTables(d)
    await d.transaction((tx) => migrateToSchema(tx, ODD))
    await d.run(`INSERT INTO odd (id, a) VALUES ('x', 'v')`)
    await d.run(`UPDATE odd SET "b""a" = 'w' WHERE id = 'x'`)
    expect(await written(d, 'x')).toBeNull()
    await d.close()
  })
})

describe('a push of a write to a column the server no longer has', () => {
  const V1 = schema()
  const [lists, items] = testSchema()
  const V2 = schema([
    lists!,
    { ...items!, columns: items!.columns.filter((c) => !['big', 'blob', 'at'].includes(c.name)) },
  ])

  it('carries the values written to it (exact), and nothing for columns only holding their old value', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    await d.transaction((tx) => migrateToSchema(tx, V1))
    await d.run(`INSERT INTO items (id, title, big, blob, at) VALUES ('a', 't', 9007199254740993, x'0102', '10:00')`)
    await d.run(`INSERT INTO items (id, title, at) VALUES ('b', 't', '10:00')`)
    await d.run(`INSERT INTO items (id, title, big) VALUES ('c', 't', 5)`)
    await d.run(`UPDATE _synchro_pending_changes SET operation = 'update', written_columns = '"title",'
      WHERE record_id = 'b'`) // b's time is the server's (as pulled)
    await d.run(`UPDATE _synchro_pending_changes SET written_columns = NULL WHERE record_id = 'c'`) // not known
    await d.transaction((tx) => migrateToSchema(tx, V2)) // the server dropped big, blob and at
    await d.run(`UPDATE items SET at = NULL WHERE id = 'b'`) // … but b's app still clears it: a write too
    await d.run(`INSERT INTO items (id, title, big, deleted_at) VALUES ('d', 't', 1, '2026-01-01T00:00:00Z')`)
    await d.run(`UPDATE _synchro_pending_changes SET operation = 'delete' WHERE record_id = 'd'`)
    const batch = await readPushBatch(d, V2.tables, 100)
    const lost = Object.fromEntries(batch.sent.map((s) => [s.entry.record_id, s.unsynced ?? null]))
    expect(lost).toEqual({
      a: { big: 9007199254740993n, blob: '\\x0102', at: '10:00' },
      b: { at: null },
      c: { big: 5 }, // unknown: every such column holding a value
      d: null, // a delete pushes no data and reports none
    })
    expect(batch.changes.find((c) => c.id === 'a')?.data).not.toHaveProperty('big')
    await d.close()
  })
})
