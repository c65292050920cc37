/**
 * Many tenants in one table: a user's snapshot and pull read their own rows through indexes, whatever the number of
 * other users' rows; owner columns are compared in their own type; a user id that cannot be a value of that type owns
 * nothing (200, no rows), never a cast error.
 */
import { randomUUID } from 'node:crypto'
import {
  createTestApp,
  createTestDatabase,
  NORTHWIND_TABLES,
  type TestApp,
  type TestDatabase,
} from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runMigrations } from '../migrations/migrations.js'

const OTHER_ROWS = 50_000
const MINE = 1_000
const TARGET = '7f000000-0000-4000-8000-000000000001'

let app: TestApp
let spyPool: pg.Pool
let db: TestDatabase
/** Every statement text the engine ran (the pool's connections are wrapped as they open). */
const statements: { text: string; values: unknown[] }[] = []

beforeAll(async () => {
  const extraSql = `
    CREATE TABLE t_uuid (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), owner uuid NOT NULL, v text NOT NULL DEFAULT 'x',
      updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
    CREATE TABLE t_int (id bigint PRIMARY KEY, owner bigint, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
    CREATE TABLE t_text (id text PRIMARY KEY, owner varchar(40), updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
    -- ${OTHER_ROWS} rows of 500 other users, then the target user's rows: ids interleave in uuid order.
    INSERT INTO t_uuid (owner) SELECT ('7e000000-0000-4000-8000-' || lpad((g % 500)::text, 12, '0'))::uuid
      FROM generate_series(1, ${OTHER_ROWS}) g;
    INSERT INTO t_uuid (owner) SELECT '${TARGET}'::uuid FROM generate_series(1, ${MINE});
    INSERT INTO t_int (id, owner) SELECT g, g % 3 FROM generate_series(1, 30) g;
    INSERT INTO t_int (id, owner) VALUES (100, 9223372036854775807), (101, -5);
    INSERT INTO t_text (id, owner) SELECT 'r' || g, 'u' || (g % 2) FROM generate_series(1, 10) g;
    INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
      SELECT 'user:' || owner, 't_uuid', id::text, 1 FROM t_uuid ORDER BY id;
    ANALYZE sync_changelog;`
  db = await createTestDatabase()
  await runMigrations(db.pool)
  spyPool = new pg.Pool({ connectionString: db.url, max: 4 })
  spyPool.on('connect', (c) => {
    const query = c.query.bind(c) as (...args: unknown[]) => unknown
    ;(c as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const a = args[0] as string | { text: string; values?: unknown[] }
      const s =
        typeof a === 'string'
          ? { text: a, values: (args[1] as unknown[]) ?? [] }
          : { text: a.text, values: a.values ?? [] }
      // A page's last statement travels with its COMMIT (values inlined): keep the statement alone to EXPLAIN it.
      statements.push({ ...s, text: s.text.replace(/;\nCOMMIT$/, '') })
      return query(...args)
    }
  })
  app = await createTestApp({
    db,
    extraSql,
    engine: { pool: spyPool },
    tables: [
      ...NORTHWIND_TABLES,
      { tableName: 't_uuid', ownerColumn: 'owner', pushPolicy: 'disabled' },
      { tableName: 't_int', ownerColumn: 'owner', pushPolicy: 'disabled' },
      { tableName: 't_text', ownerColumn: 'owner', pushPolicy: 'disabled' },
    ],
  })
  // The planner must know the index the engine just created.
  await db.pool.query('ANALYZE t_uuid')
}, 120_000)
afterAll(async () => {
  await app?.close()
  await spyPool?.end()
  await db?.drop()
})

interface Page {
  status: number
  body: { records: { id: string; table_name: string }[]; cursor?: unknown; has_more: boolean; checkpoint: number }
}

async function snapshotAll(user: string): Promise<{ statuses: number[]; ids: Map<string, string[]> }> {
  const reg = await app.registerClient(user)
  const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
  const ids = new Map<string, string[]>()
  const statuses: number[] = []
  let cursor: unknown
  for (let i = 0; i < 100; i++) {
    const r = (await app.call('POST', '/sync/snapshot', { user, body: { ...pair, limit: 1000, cursor } })) as Page
    statuses.push(r.status)
    if (r.status !== 200) break
    for (const rec of r.body.records) ids.set(rec.table_name, [...(ids.get(rec.table_name) ?? []), rec.id])
    if (!r.body.has_more) break
    cursor = r.body.cursor
  }
  return { statuses, ids }
}

/**
 * EXPLAIN ANALYZE of a recorded statement as the caller: the rows that scans of tables (not of the statement's own
 * page-sized CTEs) read and threw away, and the plan text.
 */
async function explain(text: string, values: unknown[], user: string): Promise<{ removed: number; plan: string }> {
  const db = await app.db.pool.connect()
  try {
    await db.query('BEGIN')
    await db.query(
      `SELECT set_config('app.user_id', $1, true), set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)`,
      [user],
    )
    const { rows } = await db.query({ text: `EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, values })
    await db.query('ROLLBACK')
    let removed = 0
    const walk = (n: { [k: string]: unknown }) => {
      if (n['Relation Name'] !== undefined) {
        removed += Number(n['Rows Removed by Filter'] ?? 0) + Number(n['Rows Removed by Index Recheck'] ?? 0)
      }
      for (const c of (n.Plans as { [k: string]: unknown }[] | undefined) ?? []) walk(c)
    }
    const plan = rows[0]['QUERY PLAN'][0].Plan
    walk(plan)
    return { removed, plan: JSON.stringify(plan) }
  } finally {
    db.release()
  }
}

describe('many tenants in one table', () => {
  it('the engine created the (owner, id) index of every owner table', async () => {
    const { rows } = await app.db.pool.query<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes WHERE tablename IN ('t_uuid', 't_int', 't_text', 'orders') ORDER BY 1`,
    )
    expect(rows.map((r) => r.indexname)).toEqual(
      expect.arrayContaining([
        'sync_t_uuid_owner_id',
        'sync_t_int_owner_id',
        'sync_t_text_owner_id',
        'sync_orders_user_id_id',
      ]),
    )
  })

  it(`a ${MINE}-row user's snapshot pages read their rows by index: few rows removed by filter among ${OTHER_ROWS}`, async () => {
    statements.length = 0
    const { statuses, ids } = await snapshotAll(TARGET)
    expect(statuses.every((s) => s === 200)).toBe(true)
    expect(ids.get('t_uuid')?.length).toBe(MINE)
    const pages = statements.filter((s) => s.text.includes('FROM "t_uuid"') && /LIMIT (\$1|\d+)\) _s/.test(s.text))
    expect(pages.length).toBeGreaterThanOrEqual(2)
    for (const [i, p] of pages.entries()) {
      const { removed, plan } = await explain(p.text, p.values, TARGET)
      expect(removed, plan).toBeLessThan(100)
      // The last page's cursor can sit near the end of the uuid space, where the primary-key range alone is the
      // cheaper plan (it removes nothing either); every other page must use the (owner, id) index.
      if (i < pages.length - 1) expect(plan).toContain('sync_t_uuid_owner_id')
    }
  })

  it("a catch-up pull of that user reads the changelog and the user's rows by index", async () => {
    const reg = await app.registerClient(TARGET)
    statements.length = 0
    // Checkpoint 1: a client that has seen the first entry (0 asks for a snapshot first).
    const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, checkpoint: 1 }
    const r = await app.call('POST', '/sync/pull', { user: TARGET, body: { ...body, limit: 500 } })
    expect(r.status).toBe(200)
    expect(r.body.changes?.length, JSON.stringify(r.body).slice(0, 300)).toBe(500)
    const page = statements.find((s) => s.text.includes('sync_changelog') && s.text.includes('FROM "t_uuid"'))
    expect(page).toBeDefined()
    const { removed, plan } = await explain(page?.text ?? '', page?.values ?? [], TARGET)
    expect(removed, plan).toBeLessThan(100)
  })

  it('owners are compared in their own type: canonical text only; a user id that is no value of the type owns nothing', async () => {
    const tablesOf = async (user: string) => {
      const { statuses, ids } = await snapshotAll(user)
      expect(statuses.every((s) => s === 200)).toBe(true)
      return { uuid: ids.get('t_uuid') ?? [], int: ids.get('t_int') ?? [], text: ids.get('t_text') ?? [] }
    }
    const one = await tablesOf('1')
    expect(one.int.sort()).toEqual(['1', '10', '13', '16', '19', '22', '25', '28', '4', '7'])
    expect(one.uuid).toEqual([])
    expect((await tablesOf('9223372036854775807')).int).toEqual(['100'])
    expect((await tablesOf('-5')).int).toEqual(['101'])
    for (const odd of ['01', '+1', '1.0', '9223372036854775808', '-9223372036854775809', 'u1x', "1'; --"]) {
      expect((await tablesOf(odd)).int, odd).toEqual([])
    }
    expect((await tablesOf('u1')).text.sort()).toEqual(['r1', 'r3', 'r5', 'r7', 'r9'])
    // A uuid owner: only the canonical form is that owner, as with the text comparison before (the handler
    // lower-cases user ids, so an upper-case one is the same user).
    expect((await tablesOf(TARGET.toUpperCase())).uuid.length).toBe(MINE)
    expect((await tablesOf(`{${TARGET}}`)).uuid).toEqual([])
    expect((await tablesOf('not-a-uuid')).uuid).toEqual([])

    for (const odd of ['not-a-uuid', '99999999999999999999', randomUUID()]) {
      const reg = await app.registerClient(odd)
      const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, checkpoint: 0 }
      const r = await app.call('POST', '/sync/pull', { user: odd, body })
      expect(r.status, odd).toBe(200)
    }
  })
})
