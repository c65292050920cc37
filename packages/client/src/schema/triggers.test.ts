import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { col, table, testSchema } from '../../test/fake-server.js'
import { cleanupTempDirs, tempDriver } from '../../test/helpers.js'
import type { SqliteDriver } from '../driver.js'
import { withSyncLock } from '../store/database.js'
import { markAttempted, readPushBatch } from '../sync/push.js'
import { migrateToSchema } from './migrate.js'
import { type ClientSchema, toClientSchema } from './synced-table.js'
import { ensureLocalTables, LOCAL_TABLES_SQL } from './triggers.js'

afterAll(cleanupTempDirs)

type Op = 'create' | 'update' | 'delete'
interface Entry {
  op: Op
  base: string | null
  /** Sent in a push whose answer never came: the server may have applied it. */
  attempted: boolean
}
interface Model {
  exists: boolean
  deleted: boolean
  updatedAt: string
  queue: Entry | null
}

type Action =
  | { kind: 'insert' }
  | { kind: 'update'; bump: boolean }
  | { kind: 'softDelete' }
  | { kind: 'hardDelete' }
  | { kind: 'undelete' }
  | { kind: 'sendLost' }

/**
 * The §4.2 rules, written independently of the SQL, with two deviations that only apply to entries the server may
 * already have applied (`attempted`): create + delete stays a delete, and a delete followed by a re-create or an
 * undelete becomes a create.
 */
function expectQueue(m: Model, newOp: Op, oldUpdatedAt: string | null): Entry | null {
  const q = m.queue
  if (q === null) return { op: newOp, base: newOp === 'create' ? null : oldUpdatedAt, attempted: false }
  const keep = (op: Op, base: string | null): Entry => ({ op, base, attempted: q.attempted })
  // An edit of a row that is still deleted keeps the queued delete.
  if (newOp === 'update' && q.op === 'delete' && m.deleted) return keep('delete', q.base ?? oldUpdatedAt)
  // A queued delete undone (undelete, re-insert): a create if the delete may have landed, else an update.
  const undone: Op = q.attempted ? 'create' : 'update'
  if (newOp === 'create') return keep(q.op === 'delete' ? undone : q.op, q.base)
  if (q.op === 'create' && newOp === 'delete') return q.attempted ? keep('delete', q.base ?? oldUpdatedAt) : null
  if (q.op === 'delete' && newOp === 'update') return keep(undone, q.base ?? oldUpdatedAt)
  return keep(q.op === 'create' ? 'create' : newOp, q.base ?? oldUpdatedAt)
}

const SCHEMA: ClientSchema = toClientSchema({
  schema_version: 1,
  schema_hash: 'h',
  server_time: '',
  tables: testSchema(),
})

async function setup(d: SqliteDriver): Promise<void> {
  await d.exec(LOCAL_TABLES_SQL)
  await d.transaction((tx) => migrateToSchema(tx, SCHEMA))
}

async function queue(d: SqliteDriver): Promise<Entry[]> {
  const rows = await d.all<Omit<Entry, 'attempted'> & { attempted: number }>(
    `SELECT operation AS op, base_updated_at AS base, attempted FROM _synchro_pending_changes WHERE table_name = 'lists'`,
  )
  return rows.map((r) => ({ ...r, attempted: r.attempted === 1 }))
}

describe('CDC triggers and queue merge rules (§4.2)', () => {
  it('any sequence of local insert/update/delete on a row yields the queue entry the rules say', async () => {
    const d = await tempDriver()
    await setup(d)
    let round = 0
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(
          fc.oneof(
            fc.constant<Action>({ kind: 'insert' }),
            fc.boolean().map<Action>((bump) => ({ kind: 'update', bump })),
            fc.constant<Action>({ kind: 'softDelete' }),
            fc.constant<Action>({ kind: 'hardDelete' }),
            fc.constant<Action>({ kind: 'undelete' }),
            fc.constant<Action>({ kind: 'sendLost' }),
          ),
          { maxLength: 12 },
        ),
        async (fromServer, actions) => {
          const id = `row-${round++}`
          await d.run(`DELETE FROM _synchro_pending_changes`)
          const m: Model = { exists: false, deleted: false, updatedAt: '2026-01-01T00:00:00.000000+00:00', queue: null }
          if (fromServer) {
            // A row that came from the server: written under the sync lock, so nothing is queued.
            await d.exec(`UPDATE _synchro_meta SET value = '1' WHERE key = 'sync_lock'`)
            await d.run(`INSERT INTO lists (id, name, updated_at) VALUES (?, 'srv', ?)`, [id, m.updatedAt])
            await d.exec(`UPDATE _synchro_meta SET value = '0' WHERE key = 'sync_lock'`)
            m.exists = true
          }
          let stamp = 0
          for (const a of actions) {
            const old = m.updatedAt
            switch (a.kind) {
              case 'insert':
                if (m.exists) continue
                m.updatedAt = `2026-02-01T00:00:${String(stamp++ % 60).padStart(2, '0')}Z`
                await d.run(`INSERT INTO lists (id, name, updated_at) VALUES (?, 'x', ?)`, [id, m.updatedAt])
                m.exists = true
                m.queue = expectQueue(m, 'create', null)
                break
              case 'update': {
                if (!m.exists) continue
                if (a.bump) m.updatedAt = `2026-03-01T00:00:${String(stamp++ % 60).padStart(2, '0')}Z`
                await d.run(`UPDATE lists SET name = ?, updated_at = ? WHERE id = ?`, [`n${stamp}`, m.updatedAt, id])
                m.queue = expectQueue(m, 'update', old)
                break
              }
              case 'softDelete':
              case 'hardDelete':
                if (!m.exists) continue
                if (a.kind === 'softDelete') {
                  await d.run(
                    `UPDATE lists SET deleted_at = '2026-04-01T00:00:00Z' WHERE id = ? AND deleted_at IS NULL`,
                    [id],
                  )
                } else {
                  await d.run(`DELETE FROM lists WHERE id = ?`, [id])
                }
                if (!m.deleted) {
                  m.deleted = true
                  m.queue = expectQueue(m, 'delete', old)
                }
                break
              case 'undelete':
                if (!m.exists || !m.deleted) continue
                await d.run(`UPDATE lists SET deleted_at = NULL WHERE id = ?`, [id])
                m.deleted = false
                // Nothing queued but edits of the tombstone: it is the server's (or never reached it), so only a create
                // restores it.
                m.queue =
                  m.queue === null || m.queue.op === 'update'
                    ? { op: 'create', base: m.queue?.base ?? old, attempted: m.queue?.attempted ?? false }
                    : expectQueue(m, 'update', old)
                break
              case 'sendLost': {
                // The engine's own read-and-mark step of a push whose answer is then lost (the queue is kept).
                const batch = await d.transaction(async (tx) => {
                  const b = await readPushBatch(tx, SCHEMA.tables, 100)
                  await markAttempted(tx, b.sent)
                  return b
                })
                expect(batch.sent.map((s) => s.entry.attempted)).toEqual(m.queue ? [m.queue.attempted ? 1 : 0] : [])
                if (m.queue) m.queue = { ...m.queue, attempted: true }
                break
              }
            }
          }
          const q = await queue(d)
          expect(q).toEqual(m.queue ? [m.queue] : [])
          // A hard delete never removes the row: it is a tombstone until the server confirms.
          const rows = await d.all<{ n: number }>('SELECT count(*) AS n FROM lists WHERE id = ?', [id])
          expect(rows[0]!.n).toBe(m.exists ? 1 : 0)
        },
      ),
      { numRuns: 300 },
    )
    await d.close()
  })

  it('refreshes client_updated_at on every write and never queues while the sync lock is held', async () => {
    const d = await tempDriver()
    await setup(d)
    await d.run(`INSERT INTO lists (id, name) VALUES ('a', 'x')`)
    const [first] = await d.all<{ t: string }>(`SELECT client_updated_at AS t FROM _synchro_pending_changes`)
    expect(first!.t).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    await new Promise((r) => setTimeout(r, 5))
    await d.run(`UPDATE lists SET name = 'y' WHERE id = 'a'`)
    const [second] = await d.all<{ t: string; op: string }>(
      `SELECT client_updated_at AS t, operation AS op FROM _synchro_pending_changes`,
    )
    expect(second!.op).toBe('create')
    expect(second!.t > first!.t).toBe(true)
    await d.exec(`DELETE FROM _synchro_pending_changes; UPDATE _synchro_meta SET value = '1' WHERE key = 'sync_lock'`)
    await d.run(`INSERT INTO lists (id, name) VALUES ('b', 'x')`)
    await d.run(`UPDATE lists SET name = 'z'`)
    await d.run(`DELETE FROM lists WHERE id = 'a'`)
    expect(await d.all(`SELECT * FROM _synchro_pending_changes`)).toEqual([])
    // Under the lock a DELETE is a real delete (server data applied as is).
    expect(await d.all(`SELECT id FROM lists ORDER BY id`)).toEqual([{ id: 'b' }])
    await d.close()
  })

  it('upgrades a queue without `attempted`: column added, existing entries marked attempted, idempotent', async () => {
    const d = await tempDriver()
    // The queue as earlier SDK versions created it.
    await d.exec(`CREATE TABLE _synchro_pending_changes (
      record_id TEXT NOT NULL, table_name TEXT NOT NULL, operation TEXT NOT NULL, base_updated_at TEXT,
      client_updated_at TEXT NOT NULL, PRIMARY KEY (table_name, record_id))`)
    await d.run(
      `INSERT INTO _synchro_pending_changes VALUES ('a', 'lists', 'create', NULL, '2026-01-01T00:00:00.000Z')`,
    )
    await ensureLocalTables(d)
    await ensureLocalTables(d)
    await d.transaction((tx) => migrateToSchema(tx, SCHEMA))
    await d.run(`INSERT INTO lists (id, name) VALUES ('b', 'x')`)
    expect(
      await d.all(`SELECT record_id, operation, attempted FROM _synchro_pending_changes ORDER BY record_id`),
    ).toEqual([
      { record_id: 'a', operation: 'create', attempted: 1 },
      { record_id: 'b', operation: 'create', attempted: 0 },
    ])
    await d.close()
  })

  it('numbers every local write (write_seq) and a new write makes a record waiting for a retry due at once', async () => {
    const d = await tempDriver()
    // A queue from the SDK version before write_seq/retry columns: upgraded in place.
    await d.exec(`CREATE TABLE _synchro_pending_changes (
      record_id TEXT NOT NULL, table_name TEXT NOT NULL, operation TEXT NOT NULL, base_updated_at TEXT,
      client_updated_at TEXT NOT NULL, attempted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (table_name, record_id))`)
    await d.run(`INSERT INTO _synchro_pending_changes VALUES ('a', 'lists', 'update', NULL, '2026-01-01T00:00:00Z', 1)`)
    await ensureLocalTables(d)
    await d.transaction((tx) => migrateToSchema(tx, SCHEMA))
    await d.run(`INSERT INTO lists (id, name) VALUES ('b', 'x')`)
    await d.run(`INSERT INTO lists (id, name) VALUES ('c', 'x')`)
    await d.run(`UPDATE _synchro_pending_changes SET retry_count = 3, retry_at = 99 WHERE record_id = 'b'`)
    await d.run(`UPDATE lists SET name = 'y' WHERE id = 'b'`)
    expect(
      await d.all(
        `SELECT record_id, write_seq, retry_count, retry_at FROM _synchro_pending_changes ORDER BY record_id`,
      ),
    ).toEqual([
      { record_id: 'a', write_seq: 0, retry_count: 0, retry_at: null },
      { record_id: 'b', write_seq: 3, retry_count: 0, retry_at: null },
      { record_id: 'c', write_seq: 2, retry_count: 0, retry_at: null },
    ])
    expect(await d.all(`SELECT value FROM _synchro_meta WHERE key = 'write_seq'`)).toEqual([{ value: '3' }])
    await d.close()
  })

  it('upgrades a queue without `attempted_data`: column added, entries kept as they were', async () => {
    const d = await tempDriver()
    // The queue as the SDK version before attempted_data created it.
    await d.exec(`CREATE TABLE _synchro_pending_changes (
      record_id TEXT NOT NULL, table_name TEXT NOT NULL, operation TEXT NOT NULL, base_updated_at TEXT,
      client_updated_at TEXT NOT NULL, attempted INTEGER NOT NULL DEFAULT 0, write_seq INTEGER NOT NULL DEFAULT 0,
      retry_count INTEGER NOT NULL DEFAULT 0, retry_at INTEGER, PRIMARY KEY (table_name, record_id))`)
    await d.run(
      `INSERT INTO _synchro_pending_changes VALUES ('a', 'lists', 'update', NULL, '2026-01-01T00:00:00Z', 1, 4, 0, NULL)`,
    )
    await ensureLocalTables(d)
    await ensureLocalTables(d)
    expect(
      await d.all(`SELECT record_id, operation, attempted, attempted_data, write_seq FROM _synchro_pending_changes`),
    ).toEqual([{ record_id: 'a', operation: 'update', attempted: 1, attempted_data: null, write_seq: 4 }])
    await d.close()
  })

  it('creates tables with §2.3 types, PK, NOT NULL and portable defaults', async () => {
    const d = await tempDriver()
    await setup(d)
    const cols = await d.all<{ name: string; type: string; notnull: number; dflt_value: string | null; pk: number }>(
      `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info('items')`,
    )
    const by = new Map(cols.map((c) => [c.name, c]))
    expect(by.get('id')).toMatchObject({ type: 'TEXT', pk: 1, notnull: 1 })
    expect(by.get('done')).toMatchObject({ type: 'INTEGER', notnull: 1, dflt_value: '0' })
    expect(by.get('price')).toMatchObject({ type: 'REAL', notnull: 0 })
    expect(by.get('blob')).toMatchObject({ type: 'BLOB' })
    expect(by.get('meta')).toMatchObject({ type: 'TEXT', notnull: 1, dflt_value: "'{}'" })
    expect(by.get('big')).toMatchObject({ type: 'INTEGER' })
    expect(by.get('updated_at')).toMatchObject({ type: 'TEXT', notnull: 1, dflt_value: 'CURRENT_TIMESTAMP' })
    const triggers = await d.all<{ name: string }>(
      `SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name`,
    )
    expect(triggers.map((t) => t.name)).toEqual([
      '_synchro_cdc_delete_items',
      '_synchro_cdc_delete_lists',
      '_synchro_cdc_insert_items',
      '_synchro_cdc_insert_lists',
      '_synchro_cdc_update_items',
      '_synchro_cdc_update_lists',
      '_synchro_uuid_insert_items',
      '_synchro_uuid_insert_lists',
      '_synchro_uuid_update_items',
      '_synchro_uuid_update_lists',
    ])
    await d.close()
  })
})

describe('uuid primary keys are written in lower case (the server stores them so)', () => {
  const UPPER = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'
  const LOWER = UPPER.toLowerCase()
  const OTHER = 'B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'
  const REFUSED =
    'synchro: lists.id is a uuid: write it in lower case (the server stores uuids in lower case, so an upper-case id would not match the rows it sends back)'
  // A table keyed by text: any id is the app's business.
  const notes = table('notes', [col('body', 'string', { db: 'text' })])
  notes.columns[0] = col('id', 'string', { db: 'text', nullable: false, pk: true })
  const schema = toClientSchema({
    schema_version: 1,
    schema_hash: 'h',
    server_time: '',
    tables: [...testSchema(), notes],
  })

  async function fresh(): Promise<SqliteDriver> {
    const d = await tempDriver()
    await d.exec(LOCAL_TABLES_SQL)
    await d.transaction((tx) => migrateToSchema(tx, schema))
    return d
  }
  const state = async (d: SqliteDriver) => ({
    rows: await d.all(`SELECT id, name FROM lists ORDER BY id`),
    queue: await d.all(`SELECT table_name, record_id, operation FROM _synchro_pending_changes ORDER BY record_id`),
    writeSeq: await d.all(`SELECT value FROM _synchro_meta WHERE key = 'write_seq'`),
  })

  it('an insert with an upper- or mixed-case uuid fails with an error saying what to do, writing and queueing nothing', async () => {
    const d = await fresh()
    const before = await state(d)
    expect(before.rows).toEqual([])
    const mixed = `${LOWER.slice(0, 9)}${UPPER.slice(9)}`
    for (const sql of [
      `INSERT INTO lists (id, name) VALUES (?, 'x')`,
      `INSERT OR REPLACE INTO lists (id, name) VALUES (?, 'x')`,
      `INSERT INTO lists (id, name) VALUES (?, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name`,
    ]) {
      for (const id of [UPPER, mixed]) await expect(d.run(sql, [id])).rejects.toThrow(REFUSED)
    }
    // A statement inside a transaction fails the same way; the caller's transaction rolls back.
    await expect(
      d.transaction(async (tx) => {
        await tx.run(`INSERT INTO lists (id, name) VALUES (?, 'first')`, [LOWER])
        await tx.run(`INSERT INTO items (id, list_id) VALUES (?, ?)`, [UPPER, LOWER])
      }),
    ).rejects.toThrow('synchro: items.id is a uuid: write it in lower case')
    expect(await state(d)).toEqual(before)
    expect(await d.all(`SELECT id FROM items`)).toEqual([])

    await d.run(`INSERT INTO lists (id, name) VALUES (?, 'x')`, [LOWER])
    expect(await state(d)).toMatchObject({
      rows: [{ id: LOWER, name: 'x' }],
      queue: [{ table_name: 'lists', record_id: LOWER, operation: 'create' }],
    })
    await d.close()
  })

  it('changing a uuid primary key to upper case is refused; the row and its queue entry stay as they were', async () => {
    const d = await fresh()
    await d.run(`INSERT INTO lists (id, name) VALUES (?, 'x')`, [LOWER])
    const before = await state(d)
    await expect(d.run(`UPDATE lists SET id = ?, name = 'y' WHERE id = ?`, [UPPER, LOWER])).rejects.toThrow(REFUSED)
    expect(await state(d)).toEqual(before)
    // Naming the id in an update without changing it is fine (ORMs write every column).
    await d.run(`UPDATE lists SET id = ?, name = 'y' WHERE id = ?`, [LOWER, LOWER])
    expect((await state(d)).rows).toEqual([{ id: LOWER, name: 'y' }])
    await d.close()
  })

  it('a table whose primary key is not a uuid accepts ids in any case', async () => {
    const d = await fresh()
    await d.run(`INSERT INTO notes (id, body) VALUES ('Note-A', 'x')`)
    await d.run(`UPDATE notes SET id = 'NOTE-B' WHERE id = 'Note-A'`)
    expect(await d.all(`SELECT id, body FROM notes`)).toEqual([{ id: 'NOTE-B', body: 'x' }])
    expect(await d.all(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%uuid%notes'`)).toEqual([])
    await d.close()
  })

  it('leaves server data (sync lock held) alone and goes with the CDC triggers when a table stops syncing', async () => {
    const d = await fresh()
    await d.transaction((tx) => withSyncLock(tx, () => tx.run(`INSERT INTO lists (id, name) VALUES (?, 's')`, [UPPER])))
    expect(await state(d)).toMatchObject({ rows: [{ id: UPPER, name: 's' }], queue: [] })
    // Re-running the migration re-creates the guard (once); a table no longer synced loses it with its other triggers.
    await d.transaction((tx) => migrateToSchema(tx, schema))
    await expect(d.run(`INSERT INTO lists (id, name) VALUES (?, 'x')`, [OTHER])).rejects.toThrow(REFUSED)
    const withoutLists = toClientSchema({ schema_version: 2, schema_hash: 'h2', server_time: '', tables: [notes] })
    await d.transaction((tx) => migrateToSchema(tx, withoutLists))
    expect(await d.all(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'lists'`)).toEqual([])
    await d.run(`INSERT INTO lists (id, name) VALUES (?, 'local')`, [OTHER])
    await d.close()
  })
})

describe('upserting a row the server already has', () => {
  const SERVER_STAMP = '2026-01-01T00:00:00.000000+00:00'
  async function synced(): Promise<SqliteDriver> {
    const d = await tempDriver()
    await setup(d)
    await d.transaction((tx) =>
      withSyncLock(tx, () =>
        tx.run(`INSERT INTO lists (id, name, updated_at) VALUES ('l1', 'srv', ?)`, [SERVER_STAMP]),
      ),
    )
    return d
  }

  it('INSERT … ON CONFLICT (id) DO UPDATE is queued as an update based on the server stamp (docs/client.md)', async () => {
    const d = await synced()
    await d.run(
      `INSERT INTO lists (id, name) VALUES ('l1', 'mine') ON CONFLICT (id) DO UPDATE SET name = excluded.name`,
    )
    expect(await d.all(`SELECT id, name FROM lists`)).toEqual([{ id: 'l1', name: 'mine' }])
    expect(await queue(d)).toEqual([{ op: 'update', base: SERVER_STAMP, attempted: false }])
    await d.close()
  })

  it('INSERT OR REPLACE is queued as a create: REPLACE fires no delete trigger (the pitfall in docs/client.md)', async () => {
    const d = await synced()
    await d.run(`INSERT OR REPLACE INTO lists (id, name) VALUES ('l1', 'mine')`)
    expect(await d.all(`SELECT id, name FROM lists`)).toEqual([{ id: 'l1', name: 'mine' }])
    expect(await queue(d)).toEqual([{ op: 'create', base: null, attempted: false }])
    await d.close()
  })
})
