import type { SchemaTable } from '@synchro/protocol'
import { afterAll, describe, expect, it } from 'vitest'
import { col, table, testSchema } from '../../test/fake-server.js'
import { cleanupTempDirs, tempDriver } from '../../test/helpers.js'
import { migrateToSchema } from './migrate.js'
import { toClientSchema } from './synced-table.js'
import { LOCAL_TABLES_SQL } from './triggers.js'

afterAll(cleanupTempDirs)

const schemaOf = (tables: SchemaTable[], version = 1) =>
  toClientSchema({ schema_version: version, schema_hash: `h${version}`, server_time: '', tables })

describe('tables synced again', () => {
  it('a table the server stops syncing and later syncs again is reported as adopted (its rows need a snapshot)', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    const all = testSchema()
    const first = await d.transaction((tx) => migrateToSchema(tx, schemaOf(all)))
    expect(first.adoptedTables).toEqual([])
    const without = all.filter((t) => t.table_name !== 'lists')
    const second = await d.transaction((tx) => migrateToSchema(tx, schemaOf(without, 2)))
    expect(second.unsyncedTables).toEqual(['lists'])
    const again = await d.transaction((tx) => migrateToSchema(tx, schemaOf(all, 3)))
    expect(again.createdTables).toEqual([])
    expect(again.adoptedTables).toEqual(['lists'])
  })
})

describe('schema migration (additive, Decision 22)', () => {
  it('adds tables and columns, recreates triggers, keeps data and queue, never touches local-only tables', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    await d.exec(`CREATE TABLE app_settings (k TEXT PRIMARY KEY, v TEXT); INSERT INTO app_settings VALUES ('theme', 'dark');
                  CREATE TRIGGER app_trigger AFTER INSERT ON app_settings BEGIN SELECT 1; END;`)
    const v1 = testSchema()
    await d.transaction((tx) => migrateToSchema(tx, schemaOf(v1)))
    await d.run(`INSERT INTO lists (id, name) VALUES ('l1', 'before')`)
    const localBefore = await d.all(
      `SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'app_settings' ORDER BY name`,
    )

    const v2 = testSchema()
    const lists = v2.find((t) => t.table_name === 'lists')!
    lists.columns.splice(2, 0, col('color', 'string', { db: 'text', nullable: false, def: "'red'" }))
    lists.columns.splice(
      2,
      0,
      col('seen_at', 'datetime', { db: 'timestamptz', nullable: false, def: 'CURRENT_TIMESTAMP' }),
    )
    v2.push(table('tags', [col('label', 'string', { db: 'text' })]))
    const res = await d.transaction((tx) => migrateToSchema(tx, schemaOf(v2, 2)))
    expect(res.createdTables).toEqual(['tags'])
    expect(res.addedColumns).toEqual([
      { table: 'lists', column: 'seen_at' },
      { table: 'lists', column: 'color' },
    ])
    // Constant default → NOT NULL DEFAULT; CURRENT_TIMESTAMP cannot be added by ALTER TABLE → nullable, no default.
    const cols = await d.all<{ name: string; notnull: number; dflt_value: string | null }>(
      `SELECT name, "notnull", dflt_value FROM pragma_table_info('lists') WHERE name IN ('color', 'seen_at') ORDER BY name`,
    )
    expect(cols).toEqual([
      { name: 'color', notnull: 1, dflt_value: "'red'" },
      { name: 'seen_at', notnull: 0, dflt_value: null },
    ])
    expect(await d.all(`SELECT id, name, color FROM lists`)).toEqual([{ id: 'l1', name: 'before', color: 'red' }])
    expect(await d.all(`SELECT record_id, operation FROM _synchro_pending_changes`)).toEqual([
      { record_id: 'l1', operation: 'create' },
    ])
    // Recreated triggers see the new columns; the new table has triggers.
    await d.run(`UPDATE lists SET color = 'blue' WHERE id = 'l1'`)
    await d.run(`INSERT INTO tags (id, label) VALUES ('t1', 'x')`)
    expect(await d.all(`SELECT table_name, operation FROM _synchro_pending_changes ORDER BY table_name`)).toEqual([
      { table_name: 'lists', operation: 'create' },
      { table_name: 'tags', operation: 'create' },
    ])
    expect(
      await d.all(`SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'app_settings' ORDER BY name`),
    ).toEqual(localBefore)
    expect(await d.all(`SELECT * FROM app_settings`)).toEqual([{ k: 'theme', v: 'dark' }])
    expect(await d.all(`SELECT key, value FROM _synchro_meta WHERE key LIKE 'schema_%' ORDER BY key`)).toEqual([
      { key: 'schema_hash', value: 'h2' },
      { key: 'schema_version', value: '2' },
    ])

    // A table the server stops syncing keeps its rows but loses its triggers (it is now plain local data).
    const v3 = v2.filter((t) => t.table_name !== 'tags')
    const r3 = await d.transaction((tx) => migrateToSchema(tx, schemaOf(v3, 3)))
    expect(r3.unsyncedTables).toEqual(['tags'])
    expect(await d.all(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'tags'`)).toEqual([])
    expect(await d.all(`SELECT label FROM tags`)).toEqual([{ label: 'x' }])
    await d.close()
  })
})

describe('a column the server retyped', () => {
  const retyped = (version: number) => {
    const tables = testSchema()
    const items = tables.find((t) => t.table_name === 'items')!
    const qty = items.columns.findIndex((c) => c.name === 'qty')
    items.columns[qty] = col('qty', 'string', { db: 'text', nullable: false, def: "'1'" })
    return schemaOf(tables, version)
  }

  it('gets the new type in place: values kept, app index kept, nothing queued, triggers back', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    await d.transaction((tx) => migrateToSchema(tx, schemaOf(testSchema())))
    await d.run(`INSERT INTO items (id, qty) VALUES ('i1', 7)`)
    await d.run(`DELETE FROM _synchro_pending_changes`)
    await d.exec('CREATE INDEX app_items_qty ON items (qty, title)')
    const res = await d.transaction((tx) => migrateToSchema(tx, retyped(2)))
    expect(res.retypedColumns).toEqual([{ table: 'items', column: 'qty' }])
    const info = await d.all(`SELECT type, "notnull", dflt_value FROM pragma_table_info('items') WHERE name = 'qty'`)
    expect(info).toEqual([{ type: 'TEXT', notnull: 1, dflt_value: "'1'" }])
    expect(await d.all(`SELECT name FROM pragma_index_info('app_items_qty')`)).toEqual([
      { name: 'qty' },
      { name: 'title' },
    ])
    expect(await d.all('SELECT * FROM _synchro_pending_changes')).toEqual([])
    // The affinity no longer turns a code into a number.
    await d.run(`UPDATE items SET qty = '007' WHERE id = 'i1'`)
    expect(await d.all(`SELECT qty, typeof(qty) AS t FROM items`)).toEqual([{ qty: '007', t: 'text' }])
    expect(await d.all('SELECT operation FROM _synchro_pending_changes')).toEqual([{ operation: 'update' }])
  })

  it('stays as it was where SQLite refuses the rebuild (a view of the app names it)', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    await d.transaction((tx) => migrateToSchema(tx, schemaOf(testSchema())))
    await d.exec('CREATE VIEW app_qty AS SELECT id, qty FROM items')
    const res = await d.transaction((tx) => migrateToSchema(tx, retyped(2)))
    expect(res.retypedColumns).toEqual([])
    expect(await d.all(`SELECT type FROM pragma_table_info('items') WHERE name = 'qty'`)).toEqual([{ type: 'INTEGER' }])
    await d.run(`INSERT INTO items (id, qty) VALUES ('i1', 7)`)
    expect(await d.all('SELECT operation FROM _synchro_pending_changes')).toEqual([{ operation: 'create' }])
  })
})

describe('a column the server drops', () => {
  it('stays with its values; NOT NULL without a default, it becomes nullable (with its index), so inserts work', async () => {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    const v1 = testSchema()
    v1[0]!.columns.splice(2, 0, col('code', 'string', { db: 'text', nullable: false }))
    v1[0]!.columns.splice(2, 0, col('kind', 'string', { db: 'text', nullable: false, def: "'a'" }))
    await d.transaction((tx) => migrateToSchema(tx, schemaOf(v1)))
    await d.exec(`CREATE INDEX lists_code ON lists (code)`)
    await d.run(`INSERT INTO lists (id, name, code) VALUES ('l1', 'x', 'c1')`)
    await d.transaction((tx) => migrateToSchema(tx, schemaOf(testSchema(), 2)))
    const cols = await d.all(
      `SELECT name, "notnull", dflt_value FROM pragma_table_info('lists') WHERE name IN ('code', 'kind') ORDER BY name`,
    )
    // `kind` has a default: inserts without it work as they are, it is left alone.
    expect(cols).toEqual([
      { name: 'code', notnull: 0, dflt_value: null },
      { name: 'kind', notnull: 1, dflt_value: "'a'" },
    ])
    await d.run(`INSERT INTO lists (id, name) VALUES ('l2', 'y')`)
    expect(await d.all(`SELECT id, code, kind FROM lists ORDER BY id`)).toEqual([
      { id: 'l1', code: 'c1', kind: 'a' },
      { id: 'l2', code: null, kind: 'a' },
    ])
    expect(await d.all(`SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'lists_code'`)).toHaveLength(1)
    // The triggers are back (the rebuild drops them), noting the write of the column the server no longer has.
    await d.run(`UPDATE lists SET code = 'c2' WHERE id = 'l1'`)
    expect(await d.all(`SELECT written_columns AS w FROM _synchro_pending_changes WHERE record_id = 'l1'`)).toEqual([
      { w: '"name","code",' },
    ])
    await d.close()
  })
})
