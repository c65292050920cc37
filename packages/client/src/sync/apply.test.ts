import type { SyncRecord } from '@synchro/protocol'
import { afterAll, beforeEach, describe, expect, it } from 'vitest'
import { testSchema } from '../../test/fake-server.js'
import { cleanupTempDirs, tempDriver } from '../../test/helpers.js'
import type { SqliteDriver, SqliteExecutor } from '../driver.js'
import { migrateToSchema } from '../schema/migrate.js'
import { type ClientSchema, toClientSchema } from '../schema/synced-table.js'
import { LOCAL_TABLES_SQL, withCdcTriggersSuspended } from '../schema/triggers.js'
import { withSyncLock } from '../store/database.js'
import { applyPullGroup, applyPullPage, applySnapshotGroup, BULK_ROWS, mergeBuckets } from './apply.js'

afterAll(cleanupTempDirs)

let d: SqliteDriver
let schema: ClientSchema
beforeEach(async () => {
  d = await tempDriver()
  await d.exec(LOCAL_TABLES_SQL)
  schema = toClientSchema({ schema_version: 1, schema_hash: 'h', server_time: '', tables: testSchema() })
  await d.transaction((tx) => migrateToSchema(tx, schema))
})

function rec(id: string, updatedAt: string, data: { [k: string]: unknown } = {}, deletedAt?: string): SyncRecord {
  return {
    id,
    table_name: 'lists',
    updated_at: updatedAt,
    data: { id, name: 'n', created_at: updatedAt, updated_at: updatedAt, deleted_at: deletedAt ?? null, ...data },
    ...(deletedAt ? { deleted_at: deletedAt } : {}),
  }
}

async function apply(changes: SyncRecord[], deletes: { id: string; table_name: string }[] = []) {
  return d.transaction((tx) => withSyncLock(tx, () => applyPullPage(tx, schema.tables, changes, deletes)))
}

const names = async () => d.all<{ id: string; name: string }>('SELECT id, name FROM lists ORDER BY id')

describe('applying pull pages', () => {
  it('skips a record when the local updated_at is after it, comparing instants across renderings', async () => {
    await apply([
      rec('a', '2026-11-26T00:40:02.555338+00:00', { name: 'v1' }),
      rec('b', '2026-11-26T00:40:02.5Z', { name: 'v1' }),
    ])
    // Same instant in another rendering → applied (the server's copy of our own write carries server-set columns);
    // one µs later → applied.
    const s1 = await apply([
      rec('a', '2026-11-26T00:40:02.555338Z', { name: 'same-instant' }),
      rec('b', '2026-11-26T00:40:02.500001Z', { name: 'newer' }),
    ])
    expect(s1).toEqual({ upserted: 2, skipped: 0, deleted: 0 })
    expect(await names()).toEqual([
      { id: 'a', name: 'same-instant' },
      { id: 'b', name: 'newer' },
    ])
    const s2 = await apply([rec('a', '2026-11-26T01:40:02.555337+01:00', { name: 'older-in-another-zone' })])
    expect(s2.skipped).toBe(1)
    expect(await d.all('SELECT * FROM _synchro_pending_changes')).toEqual([])
  })

  it('never overwrites a row that has a queued local change', async () => {
    await apply([rec('a', '2026-01-01T00:00:00Z')])
    await d.run(`UPDATE lists SET name = 'mine' WHERE id = 'a'`)
    const s = await apply([rec('a', '2027-01-01T00:00:00Z', { name: 'server' })])
    expect(s.skipped).toBe(1)
    expect(await names()).toEqual([{ id: 'a', name: 'mine' }])
    // Nor deletes it: the queued change meets the server's state when it is pushed.
    const del = await apply([], [{ id: 'a', table_name: 'lists' }])
    expect(del).toEqual({ upserted: 0, skipped: 1, deleted: 0 })
    expect(await d.all(`SELECT deleted_at FROM lists WHERE id = 'a'`)).toEqual([{ deleted_at: null }])
  })

  it('applies deletes as soft deletes (only where still live) and keeps records carrying deleted_at as tombstones', async () => {
    await apply([rec('a', '2026-01-01T00:00:00Z'), rec('b', '2026-01-01T00:00:00Z')])
    const s = await apply(
      [rec('c', '2026-01-02T00:00:00Z', {}, '2026-01-02T00:00:00Z')],
      [
        { id: 'a', table_name: 'lists' },
        { id: 'zz', table_name: 'lists' },
        { id: 'x', table_name: 'unknown_table' },
      ],
    )
    expect(s.deleted).toBe(1)
    const rows = await d.all<{ id: string; del: number }>(
      'SELECT id, deleted_at IS NOT NULL AS del FROM lists ORDER BY id',
    )
    expect(rows).toEqual([
      { id: 'a', del: 1 },
      { id: 'b', del: 0 },
      { id: 'c', del: 1 },
    ])
    const [{ deleted_at: first }] = (await d.all<{ deleted_at: string }>(
      `SELECT deleted_at FROM lists WHERE id = 'a'`,
    )) as [{ deleted_at: string }]
    await apply([], [{ id: 'a', table_name: 'lists' }])
    expect(await d.all(`SELECT deleted_at FROM lists WHERE id = 'a'`)).toEqual([{ deleted_at: first }])
  })

  it('converts wire values to SQLite storage (booleans, JSON, arrays, bytea hex) and fills absent keys', async () => {
    const item: SyncRecord = {
      id: 'i1',
      table_name: 'items',
      updated_at: '2026-01-01T00:00:00Z',
      data: {
        id: 'i1',
        title: 't',
        done: true,
        meta: { a: [1, { b: null }] },
        tags: ['x'],
        blob: '\\x00ff',
        price: 1.5,
      },
    }
    await d.transaction((tx) => withSyncLock(tx, () => applyPullPage(tx, schema.tables, [item], [])))
    const [row] = await d.all<{ [k: string]: unknown }>('SELECT * FROM items')
    expect(row).toMatchObject({
      id: 'i1',
      done: 1,
      meta: '{"a":[1,{"b":null}]}',
      tags: '["x"]',
      price: 1.5,
      qty: 1,
      big: null,
    })
    expect(Array.from(row!.blob as Uint8Array)).toEqual([0, 255])
    // updated_at absent from data: the envelope's value is used.
    expect(row!.updated_at).toBe('2026-01-01T00:00:00Z')
  })

  it('pages of new rows take the insert-only path; an existing newer row in a later page of the group is still kept', async () => {
    await apply([rec('k', '2026-01-01T00:00:02Z', { name: 'local-newer' })])
    const group = (pages: SyncRecord[][]) =>
      d.transaction((tx) =>
        withSyncLock(tx, () =>
          applyPullGroup(
            tx,
            schema.tables,
            pages.map((changes, i) => ({ changes, deletes: [], checkpoint: i + 1 })),
          ),
        ),
      )
    // Page 1: only new rows (fast path). Page 2: a new row, an existing row with an older stamp (kept local) and one
    // with an equal stamp (the server's copy wins).
    const s = await group([
      [rec('n1', '2026-01-01T00:00:01Z', { name: 'new1' }), rec('n2', '2026-01-01T00:00:01Z', { name: 'new2' })],
      [
        rec('n3', '2026-01-01T00:00:01Z', { name: 'new3' }),
        rec('k', '2026-01-01T00:00:01Z', { name: 'older-from-server' }),
        rec('n1', '2026-01-01T00:00:01.000Z', { name: 'same-instant' }),
      ],
    ])
    expect(s).toEqual({ upserted: 4, skipped: 1, deleted: 0 })
    expect(await names()).toEqual([
      { id: 'k', name: 'local-newer' },
      { id: 'n1', name: 'same-instant' },
      { id: 'n2', name: 'new2' },
      { id: 'n3', name: 'new3' },
    ])
    // A single page mixing new and existing rows (the fast path gives way to the stamp check at once).
    const s2 = await apply([rec('n4', '2026-01-01T00:00:01Z'), rec('k', '2026-01-01T00:00:00Z', { name: 'older' })])
    expect(s2).toEqual({ upserted: 1, skipped: 1, deleted: 0 })
    expect((await names()).find((r) => r.id === 'k')?.name).toBe('local-newer')
  })

  it('stores the highest checkpoint of a group, never lowers it, and merges bucket updates', async () => {
    const run = (pages: { checkpoint: number; bucket_updates?: { added?: string[]; removed?: string[] } }[]) =>
      d.transaction((tx) =>
        withSyncLock(tx, () =>
          applyPullGroup(
            tx,
            schema.tables,
            pages.map((p) => ({ changes: [], deletes: [], ...p })),
          ),
        ),
      )
    const cp = async () =>
      (await d.all<{ value: string }>(`SELECT value FROM _synchro_meta WHERE key = 'checkpoint'`))[0]!.value
    await run([{ checkpoint: 5, bucket_updates: { added: ['user:u', 'global'] } }, { checkpoint: 9 }])
    expect(await cp()).toBe('9')
    await run([{ checkpoint: 3, bucket_updates: { removed: ['global'], added: ['team:1'] } }])
    expect(await cp()).toBe('9')
    expect(await d.all(`SELECT value FROM _synchro_meta WHERE key = 'known_buckets'`)).toEqual([
      { value: '["user:u","team:1"]' },
    ])
    expect(mergeBuckets(['a'], undefined)).toBeNull()
  })
})

describe('bulk groups apply without the idle CDC triggers', () => {
  const triggerSql = (ex: SqliteExecutor = d) =>
    ex.all<{ name: string; sql: string }>(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name`)
  const schemaVersion = async () =>
    (await d.all<{ v: number }>('SELECT schema_version AS v FROM pragma_schema_version'))[0]!.v
  const queue = () =>
    d.all<{ id: string; op: string }>(
      'SELECT record_id AS id, operation AS op FROM _synchro_pending_changes ORDER BY table_name, record_id',
    )
  const many = (n: number, prefix: string) =>
    Array.from({ length: n }, (_, i) => rec(`${prefix}${String(i).padStart(5, '0')}`, '2026-01-01T00:00:01Z'))
  const group = (pages: SyncRecord[][]) =>
    d.transaction((tx) =>
      withSyncLock(tx, () =>
        applyPullGroup(
          tx,
          schema.tables,
          pages.map((changes, i) => ({ changes, deletes: [], checkpoint: i + 1 })),
        ),
      ),
    )

  it('a group with BULK_ROWS rows of a table drops and restores its triggers byte for byte; local writes are tracked before and after', async () => {
    await d.run(`INSERT INTO lists (id, name) VALUES ('mine', 'local')`)
    const before = await triggerSql()
    const v0 = await schemaVersion()
    // Two pages adding up to exactly BULK_ROWS rows, one of them for the row with a queued local change.
    const rows = many(BULK_ROWS - 1, 'r')
    const s = await group([rows.slice(0, 200), [...rows.slice(200), rec('mine', '2027-01-01T00:00:00Z')]])
    expect(s).toEqual({ upserted: BULK_ROWS - 1, skipped: 1, deleted: 0 })
    expect(await schemaVersion()).toBeGreaterThan(v0)
    expect(await triggerSql()).toEqual(before)
    expect(await queue()).toEqual([{ id: 'mine', op: 'create' }])
    expect(await d.all(`SELECT name FROM lists WHERE id = 'mine'`)).toEqual([{ name: 'local' }])
    await d.run(`UPDATE lists SET name = 'edited' WHERE id = 'r00007'`)
    await d.run(`DELETE FROM lists WHERE id = 'r00008'`)
    expect(await queue()).toEqual([
      { id: 'mine', op: 'create' },
      { id: 'r00007', op: 'update' },
      { id: 'r00008', op: 'delete' },
    ])
  })

  it('snapshot groups too: bulk pages without triggers, rows with a queued change kept, triggers restored', async () => {
    await d.run(`INSERT INTO lists (id, name) VALUES ('mine', 'local')`)
    const before = await triggerSql()
    const v0 = await schemaVersion()
    const rows = many(BULK_ROWS, 'p')
    await d.transaction((tx) =>
      withSyncLock(tx, () =>
        applySnapshotGroup(tx, schema.tables, [
          rows.slice(0, 300),
          [...rows.slice(300), rec('mine', '2027-01-01T00:00:00Z')],
        ]),
      ),
    )
    expect(await schemaVersion()).toBeGreaterThan(v0)
    expect(await triggerSql()).toEqual(before)
    expect(await d.all('SELECT count(*) AS n FROM lists')).toEqual([{ n: BULK_ROWS + 1 }])
    expect(await d.all(`SELECT name FROM lists WHERE id = 'mine'`)).toEqual([{ name: 'local' }])
    await d.run(`UPDATE lists SET name = 'edited' WHERE id = 'p00001'`)
    expect(await queue()).toEqual([
      { id: 'mine', op: 'create' },
      { id: 'p00001', op: 'update' },
    ])
  })

  it('smaller groups keep the triggers (no DDL) and still queue nothing', async () => {
    const v0 = await schemaVersion()
    const s = await group([many(BULK_ROWS - 1, 's')])
    expect(s.upserted).toBe(BULK_ROWS - 1)
    expect(await schemaVersion()).toBe(v0)
    expect(await queue()).toEqual([])
  })

  it('the triggers are gone only inside the call, and come back when it throws (transaction open or rolled back)', async () => {
    const before = await triggerSql()
    const lists = before.filter((t) => t.name.endsWith('_lists')).map((t) => t.name)
    // The three CDC triggers and the two uuid guards (inert under the sync lock too).
    expect(lists).toHaveLength(5)
    await d.transaction(async (tx) => {
      await withCdcTriggersSuspended(tx, ['lists'], async () => {
        const inside = (await triggerSql(tx)).map((t) => t.name)
        expect(inside.filter((n) => lists.includes(n))).toEqual([])
        expect(inside).toHaveLength(before.length - lists.length)
      })
      expect(await triggerSql(tx)).toEqual(before)
      await expect(
        withCdcTriggersSuspended(tx, ['lists'], async () => {
          throw new Error('boom')
        }),
      ).rejects.toThrow('boom')
      // Still inside the open transaction: back already, so a commit could never lose them.
      expect(await triggerSql(tx)).toEqual(before)
    })
    await expect(
      d.transaction((tx) =>
        withCdcTriggersSuspended(tx, ['lists'], async () => {
          throw new Error('rolled back')
        }),
      ),
    ).rejects.toThrow('rolled back')
    expect(await triggerSql()).toEqual(before)
    await d.run(`INSERT INTO lists (id, name) VALUES ('after', 'x')`)
    expect(await queue()).toEqual([{ id: 'after', op: 'create' }])
  })
})
