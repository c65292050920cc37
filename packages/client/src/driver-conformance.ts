/**
 * Shared conformance suite for SqliteDriver implementations (every implementation of a pluggable interface runs the
 * same suite). Use it from a test file:
 *
 * @example
 * registerDriverTests('better-sqlite3', () => openBetterSqlite3(tmpFile()))
 */
import type { SchemaColumn } from '@synchro/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import type { Row, SqliteDriver } from './driver.js'
import { migrateToSchema } from './schema/migrate.js'
import { toClientSchema } from './schema/synced-table.js'
import { LOCAL_TABLES_SQL } from './schema/triggers.js'

/** Returns a driver over a fresh, empty database on every call. */
export type DriverTestFactory = () => SqliteDriver | Promise<SqliteDriver>

export function registerDriverTests(name: string, factory: DriverTestFactory): void {
  describe(`SqliteDriver conformance: ${name}`, () => {
    const open: SqliteDriver[] = []
    async function fresh(): Promise<SqliteDriver> {
      const d = await factory()
      open.push(d)
      return d
    }
    afterEach(async () => {
      for (const d of open.splice(0)) await d.close().catch(() => {})
    })

    it('round-trips every storage class through run and all', async () => {
      const d = await fresh()
      await d.exec('CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)')
      const res = await d.run('INSERT INTO t VALUES (?, ?, ?, ?, ?)', [
        42,
        1.5,
        'héllo',
        new Uint8Array([0, 255, 16]),
        null,
      ])
      expect(res.changes).toBe(1)
      const rows = await d.all<Row>('SELECT * FROM t')
      expect(rows).toHaveLength(1)
      const r = rows[0]!
      expect(r.i).toBe(42)
      expect(r.r).toBe(1.5)
      expect(r.s).toBe('héllo')
      expect(r.n).toBeNull()
      expect(r.b).toBeInstanceOf(Uint8Array)
      expect(Array.from(r.b as Uint8Array)).toEqual([0, 255, 16])
    })

    it('binds booleans as 1/0, undefined as NULL and bigints as integers', async () => {
      const d = await fresh()
      await d.exec('CREATE TABLE t (a INTEGER, b INTEGER, c TEXT, d INTEGER)')
      await d.run('INSERT INTO t VALUES (?, ?, ?, ?)', [true, false, undefined, 9007199254740993n])
      const [r] = await d.all<Row>('SELECT a, b, c, CAST(d AS TEXT) AS d FROM t')
      expect(r).toEqual({ a: 1, b: 0, c: null, d: '9007199254740993' })
    })

    it('reports changes for UPDATE/DELETE and returns [] from all() on statements without rows', async () => {
      const d = await fresh()
      await d.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
      expect((await d.run('UPDATE t SET v = ? WHERE id >= ?', ['x', 2])).changes).toBe(2)
      expect(await d.all('DELETE FROM t WHERE id = ?', [1])).toEqual([])
      expect(await d.all<Row>('SELECT id, v FROM t ORDER BY id')).toEqual([
        { id: 2, v: 'x' },
        { id: 3, v: 'x' },
      ])
    })

    it('rejects (does not throw synchronously) on invalid SQL', async () => {
      const d = await fresh()
      let p: Promise<unknown> | undefined
      expect(() => {
        p = d.all('SELEC nonsense')
      }).not.toThrow()
      await expect(p).rejects.toThrow()
      await expect(d.run('INSERT INTO missing VALUES (1)')).rejects.toThrow()
    })

    transactionAndTriggerTests(fresh)

    it('runMany (when implemented) runs the statement once per parameter list', async () => {
      const d = await fresh()
      await d.exec('CREATE TABLE t (v INTEGER)')
      if (!d.runMany) return
      const res = await d.runMany('INSERT INTO t VALUES (?)', [[1], [2], [3]])
      expect(res.changes).toBe(3)
      expect(await d.all('SELECT sum(v) AS s FROM t')).toEqual([{ s: 6 }])
    })

    it('keeps 64-bit-safe integers and float precision', async () => {
      const d = await fresh()
      await d.exec('CREATE TABLE t (i INTEGER, r REAL)')
      await d.run('INSERT INTO t VALUES (?, ?)', [Number.MAX_SAFE_INTEGER, 0.1 + 0.2])
      expect(await d.all('SELECT * FROM t')).toEqual([{ i: Number.MAX_SAFE_INTEGER, r: 0.1 + 0.2 }])
    })
  })
}

/** Transactions, triggers and upserts: what the SDK's change tracking and apply path rely on. */
function transactionAndTriggerTests(fresh: () => Promise<SqliteDriver>): void {
  it('commits a transaction and returns its value', async () => {
    const d = await fresh()
    await d.exec('CREATE TABLE t (v INTEGER)')
    const out = await d.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (1)')
      await tx.run('INSERT INTO t VALUES (2)')
      const rows = await tx.all<{ n: number }>('SELECT count(*) AS n FROM t')
      return rows[0]!.n
    })
    expect(out).toBe(2)
    expect(await d.all('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }])
  })

  it('rolls back and rethrows when the transaction callback throws', async () => {
    const d = await fresh()
    await d.exec('CREATE TABLE t (v INTEGER)')
    await d.run('INSERT INTO t VALUES (0)')
    const boom = new Error('boom')
    await expect(
      d.transaction(async (tx) => {
        await tx.run('INSERT INTO t VALUES (1)')
        await new Promise((r) => setTimeout(r, 1))
        throw boom
      }),
    ).rejects.toBe(boom)
    expect(await d.all('SELECT v FROM t')).toEqual([{ v: 0 }])
    // The connection is usable afterwards (no transaction left open).
    await d.transaction(async (tx) => {
      await tx.run('INSERT INTO t VALUES (2)')
    })
    expect(await d.all('SELECT v FROM t ORDER BY v')).toEqual([{ v: 0 }, { v: 2 }])
  })

  it('rolls back when a statement inside the transaction fails', async () => {
    const d = await fresh()
    await d.exec('CREATE TABLE t (v INTEGER PRIMARY KEY)')
    await expect(
      d.transaction(async (tx) => {
        await tx.run('INSERT INTO t VALUES (1)')
        await tx.run('INSERT INTO t VALUES (1)')
      }),
    ).rejects.toThrow()
    expect(await d.all('SELECT v FROM t')).toEqual([])
  })

  it('runs triggers, including RAISE(IGNORE) and nested trigger writes (the CDC triggers rely on them)', async () => {
    const d = await fresh()
    await d.exec(`
      CREATE TABLE t (id TEXT PRIMARY KEY, deleted_at TEXT);
      CREATE TABLE log (op TEXT);
      CREATE TRIGGER t_upd AFTER UPDATE ON t BEGIN INSERT INTO log VALUES ('update'); END;
      CREATE TRIGGER t_del BEFORE DELETE ON t BEGIN
        UPDATE t SET deleted_at = 'now' WHERE id = OLD.id;
        SELECT RAISE(IGNORE);
      END;`)
    await d.run('INSERT INTO t (id) VALUES (?)', ['a'])
    await d.run('DELETE FROM t WHERE id = ?', ['a'])
    expect(await d.all('SELECT id, deleted_at FROM t')).toEqual([{ id: 'a', deleted_at: 'now' }])
    expect(await d.all('SELECT op FROM log')).toEqual([{ op: 'update' }])
  })

  it('drops triggers and re-creates them from sqlite_master inside a transaction, rolled back with it (bulk applies rely on it)', async () => {
    const d = await fresh()
    await d.exec(`
      CREATE TABLE t (v INTEGER);
      CREATE TABLE log (v INTEGER);
      CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        -- a comment; and a semicolon inside the body
        INSERT INTO log VALUES (NEW.v);
      END;`)
    const stored = await d.all<{ name: string; sql: string }>(
      `SELECT name, sql FROM sqlite_master WHERE type = 'trigger'`,
    )
    await d.transaction(async (tx) => {
      await tx.exec('DROP TRIGGER main.t_ins;')
      await tx.run('INSERT INTO t VALUES (1)')
      await tx.exec(stored.map((r) => `${r.sql};`).join('\n'))
    })
    await expect(
      d.transaction(async (tx) => {
        await tx.exec('DROP TRIGGER main.t_ins;')
        throw new Error('boom')
      }),
    ).rejects.toThrow('boom')
    await d.run('INSERT INTO t VALUES (2)')
    expect(await d.all('SELECT v FROM log')).toEqual([{ v: 2 }])
    expect(await d.all(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger'`)).toEqual(stored)
  })

  it('supports TEMP tables and TEMP triggers on main tables (change observation relies on them)', async () => {
    const d = await fresh()
    await d.exec(`
      CREATE TABLE t (v INTEGER);
      CREATE TEMP TABLE counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
      INSERT INTO temp.counters VALUES ('t', 0);
      CREATE TEMP TRIGGER obs AFTER INSERT ON main.t BEGIN UPDATE temp.counters SET n = n + 1 WHERE name = 't'; END;`)
    await d.run('INSERT INTO t VALUES (1)')
    await d.run('INSERT INTO t VALUES (2)')
    expect(await d.all('SELECT n FROM temp.counters')).toEqual([{ n: 2 }])
  })

  it("refuses an upper-case uuid id with the SDK trigger's message and keeps nothing of the write", async () => {
    const d = await fresh()
    await d.exec(LOCAL_TABLES_SQL)
    await d.transaction((tx) => migrateToSchema(tx, UUID_KEYED))
    const upper = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'
    const refused = 'synchro: t.id is a uuid: write it in lower case'
    await expect(d.run('INSERT INTO t (id) VALUES (?)', [upper])).rejects.toThrow(refused)
    await expect(d.transaction((tx) => tx.run('INSERT INTO t (id) VALUES (?)', [upper]))).rejects.toThrow(refused)
    expect(await d.all('SELECT id FROM t')).toEqual([])
    expect(await d.all('SELECT record_id FROM _synchro_pending_changes')).toEqual([])
    await d.run('INSERT INTO t (id) VALUES (?)', [upper.toLowerCase()])
    await expect(d.run('UPDATE t SET id = ?', [upper])).rejects.toThrow(refused)
    expect(await d.all('SELECT id FROM t')).toEqual([{ id: upper.toLowerCase() }])
    expect(await d.all('SELECT record_id FROM _synchro_pending_changes')).toEqual([{ record_id: upper.toLowerCase() }])
  })

  it('runs ON CONFLICT upserts (the apply path relies on them)', async () => {
    const d = await fresh()
    await d.exec('CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT)')
    const sql = 'INSERT INTO t (id, v) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v'
    await d.run(sql, ['a', '1'])
    await d.run(sql, ['a', '2'])
    expect(await d.all('SELECT * FROM t')).toEqual([{ id: 'a', v: '2' }])
  })
}

/** One synced table keyed by a uuid, as `GET /sync/schema` describes it. */
const UUID_KEYED = toClientSchema({
  schema_version: 1,
  schema_hash: 'conformance',
  server_time: '',
  tables: [
    {
      table_name: 't',
      push_policy: 'owner_only',
      updated_at_column: 'updated_at',
      deleted_at_column: 'deleted_at',
      primary_key: ['id'],
      columns: [
        column('id', 'uuid', 'string'),
        column('updated_at', 'timestamp with time zone', 'datetime'),
        column('deleted_at', 'timestamp with time zone', 'datetime'),
      ],
    },
  ],
})

function column(name: string, db_type: string, logical_type: SchemaColumn['logical_type']): SchemaColumn {
  const pk = name === 'id'
  return { name, db_type, logical_type, nullable: !pk, default_kind: 'none', is_primary_key: pk }
}
