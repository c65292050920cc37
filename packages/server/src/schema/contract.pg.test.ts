import { createHash } from 'node:crypto'
import {
  createTestApp,
  createTestDatabase,
  NORTHWIND_SQL,
  NORTHWIND_TABLES,
  type TestApp,
  type TestDatabase,
} from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine } from '../engine/engine.js'
import { Registry } from '../registry/registry.js'

let app: TestApp
beforeAll(async () => {
  app = await createTestApp()
})
afterAll(async () => {
  await app.close()
})

describe('§3 C schema and tables endpoints', () => {
  it('23 GET /sync/tables lists the tables sorted by name with their metadata', async () => {
    const r = await app.call('GET', '/sync/tables', { user: 'u' })
    expect(r.status).toBe(200)
    expect(r.body.tables).toEqual([
      {
        table_name: 'categories',
        push_policy: 'owner_only',
        dependencies: [],
        updated_at_column: 'updated_at',
        deleted_at_column: 'deleted_at',
        bucket_by_column: 'user_id',
        bucket_prefix: 'user:',
        global_when_bucket_null: true,
        allow_global_read: true,
      },
      {
        table_name: 'order_details',
        push_policy: 'owner_only',
        dependencies: ['orders'],
        parent_table: 'orders',
        parent_fk_col: 'order_id',
        updated_at_column: 'updated_at',
        deleted_at_column: 'deleted_at',
      },
      {
        table_name: 'orders',
        push_policy: 'owner_only',
        dependencies: [],
        updated_at_column: 'updated_at',
        deleted_at_column: 'deleted_at',
        bucket_by_column: 'user_id',
        bucket_prefix: 'user:',
      },
      {
        table_name: 'products',
        push_policy: 'disabled',
        dependencies: [],
        updated_at_column: 'updated_at',
        deleted_at_column: 'deleted_at',
      },
    ])
    expect(typeof r.body.schema_version).toBe('number')
    expect(r.body.schema_hash).toMatch(/^[0-9a-f]{64}$/)
  })

  it('24 GET /sync/schema: sorted tables, column facts, key order', async () => {
    const r = await app.call('GET', '/sync/schema', { user: 'u' })
    expect(r.status).toBe(200)
    expect(Object.keys(r.body)).toEqual(['schema_version', 'schema_hash', 'server_time', 'tables'])
    expect(r.body.tables.map((t: { table_name: string }) => t.table_name)).toEqual([
      'categories',
      'order_details',
      'orders',
      'products',
    ])
    for (const t of r.body.tables) {
      expect(t.primary_key).toEqual(['id'])
      for (const c of t.columns) {
        for (const k of ['name', 'db_type', 'logical_type', 'nullable', 'default_kind', 'is_primary_key'])
          expect(c).toHaveProperty(k)
      }
    }
    const orders = r.body.tables.find((t: { table_name: string }) => t.table_name === 'orders')
    expect(Object.keys(orders)).toEqual([
      'table_name',
      'push_policy',
      'updated_at_column',
      'deleted_at_column',
      'primary_key',
      'bucket_by_column',
      'bucket_prefix',
      'columns',
    ])
    const col = (name: string) => orders.columns.find((c: { name: string }) => c.name === name)
    expect(col('status')).toEqual({
      name: 'status',
      db_type: 'order_status',
      logical_type: 'string',
      nullable: false,
      default_sql: "'pending'::order_status",
      default_kind: 'portable',
      sqlite_default_sql: "'pending'",
      is_primary_key: false,
    })
    expect(col('id')).toEqual({
      name: 'id',
      db_type: 'uuid',
      logical_type: 'string',
      nullable: false,
      default_sql: 'gen_random_uuid()',
      default_kind: 'server_only',
      is_primary_key: true,
    })
    expect(col('deleted_at')).toEqual({
      name: 'deleted_at',
      db_type: 'timestamp with time zone',
      logical_type: 'datetime',
      nullable: true,
      default_kind: 'none',
      is_primary_key: false,
    })
    expect(col('metadata')).toMatchObject({ db_type: 'jsonb', logical_type: 'json', sqlite_default_sql: "'{}'" })
    expect(col('total_cents')).toMatchObject({ db_type: 'bigint', logical_type: 'int64', sqlite_default_sql: '0' })
    expect(col('required_date')).toMatchObject({ logical_type: 'date' })
    expect(col('preferred_ship_time')).toMatchObject({ db_type: 'time without time zone', logical_type: 'time' })
    expect(col('order_date')).toMatchObject({ default_sql: 'now()', sqlite_default_sql: 'CURRENT_TIMESTAMP' })
    const details = r.body.tables.find((t: { table_name: string }) => t.table_name === 'order_details')
    expect(details.dependencies).toEqual(['orders'])
    expect(details.columns.find((c: { name: string }) => c.name === 'unit_price')).toMatchObject({
      db_type: 'numeric(10,2)',
      logical_type: 'float',
    })
    const products = r.body.tables.find((t: { table_name: string }) => t.table_name === 'products')
    expect(products.columns.find((c: { name: string }) => c.name === 'thumbnail')).toMatchObject({
      logical_type: 'bytes',
    })
    expect(products.columns.find((c: { name: string }) => c.name === 'discontinued')).toMatchObject({
      logical_type: 'boolean',
      sqlite_default_sql: '0',
    })
    const categories = r.body.tables.find((t: { table_name: string }) => t.table_name === 'categories')
    expect(categories.global_when_bucket_null).toBe(true)
    expect(categories.allow_global_read).toBe(true)
    expect(categories.columns.find((c: { name: string }) => c.name === 'search_tags')).toMatchObject({
      db_type: 'text[]',
      logical_type: 'json',
      sqlite_default_sql: "'{}'",
    })
  })

  it('25 hash invariant: sha256(JSON.stringify({tables})) == schema_hash', async () => {
    const r = await app.call('GET', '/sync/schema', { user: 'u' })
    const hash = createHash('sha256')
      .update(JSON.stringify({ tables: r.body.tables }))
      .digest('hex')
    expect(hash).toBe(r.body.schema_hash)
  })

  it('26 registration order and dependency order do not change V/H', async () => {
    const reversed = [...NORTHWIND_TABLES]
      .reverse()
      .map((t) => ({ ...t, dependencies: [...(t.dependencies ?? [])].reverse() }))
    const registry = new Registry()
    for (const t of reversed) registry.register(t)
    const other = await createEngine({ pool: app.db.pool, registry })
    const a = await app.engine.schema()
    const b = await other.schema()
    expect([b.schema_version, b.schema_hash]).toEqual([a.schema_version, a.schema_hash])
  })

  it('28 DDL is noticed: ADD COLUMN → new hash, version+1, old pair → 409; DROP → original pair back', async () => {
    const before = await app.call('GET', '/sync/schema', { user: 'u' })
    await app.db.pool.query(`ALTER TABLE orders ADD COLUMN x TEXT NOT NULL DEFAULT ''`)
    const after = await app.call('GET', '/sync/schema', { user: 'u' })
    expect(after.body.schema_hash).not.toBe(before.body.schema_hash)
    expect(after.body.schema_version).toBe(before.body.schema_version + 1)
    const stale = await app.call('POST', '/sync/register', {
      user: 'u28',
      body: { client_id: 'c', schema_version: before.body.schema_version, schema_hash: before.body.schema_hash },
    })
    expect(stale.status).toBe(409)
    expect(stale.body.server_schema_version).toBe(after.body.schema_version)
    expect(stale.body.server_schema_hash).toBe(after.body.schema_hash)
    await app.db.pool.query(`ALTER TABLE orders DROP COLUMN x`)
    const reverted = await app.call('GET', '/sync/schema', { user: 'u' })
    expect(reverted.body.schema_hash).toBe(before.body.schema_hash)
    expect(reverted.body.schema_version).toBe(before.body.schema_version)
  })

  it('28b a changed default is noticed too', async () => {
    const before = await app.engine.schema()
    await app.db.pool.query(`ALTER TABLE orders ALTER COLUMN ship_address SET DEFAULT 'nowhere'`)
    const after = await app.engine.schema()
    expect(after.schema_hash).not.toBe(before.schema_hash)
    await app.db.pool.query(`ALTER TABLE orders ALTER COLUMN ship_address SET DEFAULT ''`)
    expect((await app.engine.schema()).schema_hash).toBe(before.schema_hash)
  })
})

describe('manifest and special types', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase()
    await db.pool.query(NORTHWIND_SQL)
  })
  afterAll(async () => {
    await db.drop()
  })

  it('19/27 24 concurrent first requests on an empty manifest → one row, one V/H', async () => {
    const engines = await Promise.all(
      Array.from({ length: 24 }, async () => {
        const r = new Registry()
        for (const t of NORTHWIND_TABLES) r.register(t)
        return createEngine({ pool: db.pool, registry: r })
      }),
    )
    await db.pool.query('TRUNCATE sync_schema_manifest')
    const results = await Promise.all(engines.map((e) => e.schema()))
    const pairs = new Set(results.map((r) => `${r.schema_version}/${r.schema_hash}`))
    expect(pairs.size).toBe(1)
    expect(results[0]?.schema_version).toBe(1)
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM sync_schema_manifest')
    expect(rows[0].n).toBe(1)
  })

  async function schemaOf(sql: string, table: Parameters<Registry['register']>[0]) {
    await db.pool.query(sql)
    const engine = await createEngine({ pool: db.pool, registry: new Registry().register(table) })
    return engine.schema()
  }

  it('29 enum → string with the enum name; domain over integer → int; Decision 13 timestamp(p)/time(p)/qualified enum', async () => {
    const s = await schemaOf(
      `CREATE SCHEMA IF NOT EXISTS app;
       CREATE TYPE app.mood AS ENUM ('ok', 'meh');
       CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
       CREATE TABLE special (
         id uuid PRIMARY KEY, updated_at timestamp(3) with time zone NOT NULL DEFAULT now(), deleted_at timestamp(3),
         status order_status, mood app.mood, n positive_int, t time(3) without time zone, iv interval,
         vc character varying(20) DEFAULT 'x'::character varying, ch character(2), num numeric, r real, dp double precision,
         sm smallint DEFAULT '-1'::integer, j json, tags order_status[], flag boolean DEFAULT (true)::boolean
       )`,
      { tableName: 'special' },
    )
    const cols = Object.fromEntries((s.tables[0]?.columns ?? []).map((c) => [c.name, c]))
    expect(cols.status).toMatchObject({ db_type: 'order_status', logical_type: 'string' })
    expect(cols.mood).toMatchObject({ db_type: 'app.mood', logical_type: 'string' })
    expect(cols.n).toMatchObject({ db_type: 'positive_int', logical_type: 'int' })
    expect(cols.updated_at).toMatchObject({ db_type: 'timestamp(3) with time zone', logical_type: 'datetime' })
    expect(cols.deleted_at).toMatchObject({ db_type: 'timestamp(3) without time zone', logical_type: 'datetime' })
    expect(cols.t).toMatchObject({ logical_type: 'time' })
    expect(cols.iv).toMatchObject({ logical_type: 'string' })
    expect(cols.vc).toMatchObject({
      db_type: 'character varying(20)',
      logical_type: 'string',
      sqlite_default_sql: "'x'",
    })
    expect(cols.ch).toMatchObject({ db_type: 'character(2)', logical_type: 'string' })
    expect(cols.num).toMatchObject({ logical_type: 'float' })
    expect(cols.sm).toMatchObject({ logical_type: 'int', sqlite_default_sql: "'-1'" })
    expect(cols.j).toMatchObject({ logical_type: 'json' })
    expect(cols.tags).toMatchObject({ logical_type: 'json' })
    expect(cols.flag).toMatchObject({ sqlite_default_sql: '1', default_kind: 'portable' })
  })

  it('30 unsupported type / no PK / composite PK → every endpoint answers 500', async () => {
    await db.pool.query(`
      CREATE TABLE bad_type (id uuid PRIMARY KEY, p point, updated_at timestamptz, deleted_at timestamptz);
      CREATE TABLE no_pk (id uuid, updated_at timestamptz, deleted_at timestamptz);
      CREATE TABLE two_pk (a int, b int, updated_at timestamptz, deleted_at timestamptz, PRIMARY KEY (a, b));`)
    const { createSyncHandler, headerAuth } = await import('../index.js')
    for (const t of ['bad_type', 'no_pk', 'two_pk']) {
      const engine = await createEngine({ pool: db.pool, registry: new Registry().register({ tableName: t }) })
      const h = createSyncHandler(engine, { authenticate: headerAuth() })
      const body = JSON.stringify({ client_id: 'c', schema_version: 0, schema_hash: '' })
      for (const [method, path] of [
        ['POST', '/sync/register'],
        ['POST', '/sync/pull'],
        ['POST', '/sync/push'],
        ['POST', '/sync/snapshot'],
        ['GET', '/sync/tables'],
        ['GET', '/sync/schema'],
      ] as const) {
        const res = await h(
          new Request(`http://x${path}`, {
            method,
            headers: { 'x-user-id': 'u' },
            body: method === 'POST' ? body : undefined,
          }),
        )
        expect(res.status, `${t} ${path}`).toBe(500)
        const msg = ((await res.json()) as { error: string }).error
        expect(msg).not.toMatch(/point|primary|SELECT/i)
      }
    }
  })

  it('31 NOT NULL server-only default: 500 on a push-enabled table, fine on a push-disabled one', async () => {
    await db.pool.query(`
      CREATE SEQUENCE IF NOT EXISTS seq_x;
      CREATE TABLE server_default (id uuid PRIMARY KEY, user_id text, n bigint NOT NULL DEFAULT nextval('seq_x'),
        updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)`)
    const pushable = await createEngine({
      pool: db.pool,
      registry: new Registry().register({ tableName: 'server_default', ownerColumn: 'user_id' }),
    })
    await expect(pushable.schema()).rejects.toThrow(/server-only default/)
    const readOnly = await createEngine({
      pool: db.pool,
      registry: new Registry().register({ tableName: 'server_default', pushPolicy: 'disabled' }),
    })
    const s = await readOnly.schema()
    expect(s.tables[0]?.columns.find((c) => c.name === 'n')).toMatchObject({ default_kind: 'server_only' })
  })

  it('Decision 31: syncColumns restricts the served columns (id/updated_at/deleted_at always kept)', async () => {
    const engine = await createEngine({
      pool: db.pool,
      registry: new Registry().register({ tableName: 'products', syncColumns: ['name'] }),
    })
    const s = await engine.schema()
    expect(s.tables[0]?.columns.map((c) => c.name)).toEqual(['id', 'name', 'updated_at', 'deleted_at'])
  })

  it('schema-qualified registered tables resolve', async () => {
    await db.pool.query(
      `CREATE TABLE app.notes (id uuid PRIMARY KEY, owner text, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)`,
    )
    const engine = await createEngine({
      pool: db.pool,
      registry: new Registry().register({ tableName: 'app.notes', ownerColumn: 'owner' }),
    })
    const s = await engine.schema()
    expect(s.tables[0]?.table_name).toBe('app.notes')
  })
})
