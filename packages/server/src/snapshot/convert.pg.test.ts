import type { SyncRecord } from '@synchro/protocol'
import { createTestApp, NORTHWIND_TABLES, type TestApp } from '@synchro/test-harness'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jsonTextDeeperThan } from '../limits/limits.js'
import { renderJson, renderJsonBytes, textRecord } from '../pull/record.js'
import { wirePageUpdatedAt } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import { BlockRow } from './block.js'
import { recordPlan } from './convert.js'
import type { TextRow } from './readahead.js'
import { readTable, readTableWire } from './table.js'

// Records rendered in this process from COPY text (convert.ts) must be byte for byte those of the SQL rendering, for
// every column type, whatever the session's TimeZone / DateStyle, and for any text.
const MAX_DEPTH = 6
let app: TestApp
beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    engine: { maxJsonDepth: MAX_DEPTH, snapshotReadAhead: { rows: 3 } },
    extraSql: `
      CREATE TYPE conv_mood AS ENUM ('ok', 'it''s "fine"');
      CREATE DOMAIN conv_doc AS jsonb;
      CREATE TABLE conv_all (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "b" boolean, "i2" smallint, "i4" integer, "i8" bigint, "r" real, "d" double precision, "n" numeric,
        "n2" numeric(12,3), "t" text, "vc" varchar(20), "ch" char(3), "u" uuid, "iv" interval, "j" json, "jb" jsonb,
        "by" bytea, "dt" date, "tm" time, "tm3" time(3), "ttz" time with time zone, "ts" timestamp,
        "ts2" timestamp(2), "tstz" timestamptz, "tstz0" timestamptz(0), "arr" integer[], "tarr" text[],
        "mood" conv_mood, "it's" text, "with space" int, "ünï" text, "back\\slash" text,
        updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      INSERT INTO conv_all (id) VALUES ('00000000-0000-4000-8000-000000000001');
      INSERT INTO conv_all VALUES ('00000000-0000-4000-8000-000000000002', true, -32768, 2147483647,
        -9223372036854775808, 'NaN', '-Infinity', 'NaN', 123456789.125, E'q"uo\\\\te\\n\\t\\r\\b\\f\\v\\u0001\\u001f\\u007f ü 😀 \\u2028',
        'x''y', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04', E'{"a": [1,\\n\\t2 ], "s":"\\\\u00e9\\\\n"}',
        '{"z": 1, "a": {"b": null}, "big": 12345678901234567890.5}', '\\x00ff', 'infinity', '24:00:00', '10:00:00.1234',
        '10:00:00+05:30', '-infinity', '2026-01-02 03:04:05.678', '2026-01-02 03:04:05.678901+02', '2026-01-02 03:04:05+05:45',
        '{1,NULL,3}', '{"a,b",NULL,"\\"q\\""}', 'it''s "fine"', 'x', 1, 'ünï', E'\\\\', now(), NULL);
      INSERT INTO conv_all (id, b, r, d, n, tstz, dt, ts, ttz, updated_at) VALUES ('00000000-0000-4000-8000-000000000003',
        false, 'Infinity', 1e308, '-Infinity', '0044-03-15 10:00:00+00 BC', '4713-01-01 BC', '0001-01-01 00:00:00 BC',
        '23:59:59.999999-12', '0044-03-15 10:00:00+00 BC');
      INSERT INTO conv_all (id, tstz, ts, dt, r, d, updated_at) VALUES ('00000000-0000-4000-8000-000000000004',
        '1880-01-01 00:00:00+00', '12026-06-30 23:59:59.5', '12026-06-30', 1.5e-7, -0.0, 'infinity');
      INSERT INTO conv_all (id, jb, j, arr) VALUES
        ('00000000-0000-4000-8000-000000000005', '{"a":{"b":{"c":{"d":1}}}}', '[[[]]]', '{{1,2},{3,4}}'),
        ('00000000-0000-4000-8000-000000000006', '{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}', NULL, NULL),
        ('00000000-0000-4000-8000-000000000007', NULL, '[[[[[["deep"]]]]]]', NULL),
        ('00000000-0000-4000-8000-000000000008', '{"s":"{[{[{[{[{[{["}', '"[[[[[[[[[["', NULL);
      CREATE TABLE "conv odd" (id bigint PRIMARY KEY, "quo""te" text, "tab	key" int,
        updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      INSERT INTO "conv odd" VALUES (1, 'a', 2, now(), NULL), (-9223372036854775808, NULL, NULL, now(), NULL);
      CREATE TABLE conv_text_id (id text PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz);
      INSERT INTO conv_text_id VALUES (E'a"b\\\\c\\td', 'x', now(), NULL), ('ünï 😀', 'y', now(), NULL), ('', 'z', now(), NULL);
      CREATE TABLE conv_naive (id uuid PRIMARY KEY, v text, updated_at timestamp NOT NULL DEFAULT now(),
        deleted_at timestamp);
      INSERT INTO conv_naive VALUES (gen_random_uuid(), 'x', now(), NULL);
      CREATE TABLE conv_ranges (id uuid PRIMARY KEY, spans tstzrange[], days daterange[], moods conv_mood[],
        at timestamptz[], doc conv_doc, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      INSERT INTO conv_ranges VALUES ('00000000-0000-4000-8000-000000000001',
        ARRAY[tstzrange('2026-01-02 03:04:05+00', '2026-02-03 00:00:00+00')], ARRAY[daterange('2026-01-02', NULL)],
        ARRAY['ok']::conv_mood[], ARRAY['2026-01-02 03:04:05+00']::timestamptz[], '{"k": [true]}', now(), NULL);
      CREATE TABLE conv_date_id (id date PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(),
        deleted_at timestamptz);
      INSERT INTO conv_date_id VALUES ('2026-01-01', now(), NULL);`,
    tables: [
      ...NORTHWIND_TABLES,
      { tableName: 'conv_all', pushPolicy: 'disabled' },
      { tableName: 'conv odd', pushPolicy: 'disabled' },
      { tableName: 'conv_text_id', pushPolicy: 'disabled' },
      { tableName: 'conv_naive', pushPolicy: 'disabled' },
      { tableName: 'conv_ranges', pushPolicy: 'disabled' },
      { tableName: 'conv_date_id', pushPolicy: 'disabled' },
    ],
  })
})
afterAll(async () => {
  await app.close()
})

/** The page records of `rows` (deep rows left out) and the ids left out. */
function records(t: ResolvedTable, rows: readonly TextRow[]): { records: SyncRecord[]; deep: string[] } {
  const out: SyncRecord[] = []
  const deep: string[] = []
  for (const row of rows) {
    const tooDeep = row instanceof BlockRow ? row.deep : jsonTextDeeperThan(row.data, MAX_DEPTH)
    if (tooDeep) deep.push(row.id)
    else
      out.push(
        row instanceof BlockRow
          ? row.record(t.tableName)
          : textRecord(row.id, t.tableName, row.data, wirePageUpdatedAt(row)),
      )
  }
  return { records: out, deep }
}

/** Both renderings of `t`'s rows, read in one transaction on `db` (whose session settings are the test's). */
async function bothWays(db: pg.PoolClient, t: ResolvedTable) {
  const ctx = app.engine.ctx
  const contract = await ctx.contracts.get()
  await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
  try {
    const sql = await readTable(ctx, async (q) => (await db.query<TextRow>(q)).rows, contract, t, '', 1000)
    const wire = await readTableWire(ctx, db, contract, t, '', 1000)
    return { sql, wire }
  } finally {
    await db.query('COMMIT')
  }
}

const table = (name: string) => app.engine.ctx.tables.find((t) => t.tableName === name) as ResolvedTable

describe('snapshot records rendered from COPY text', () => {
  it.each([
    ['Etc/UTC', 'ISO, MDY'],
    ['America/New_York', 'SQL, DMY'],
    ['Asia/Kathmandu', 'Postgres, DMY'],
    ['Europe/Amsterdam', 'German'],
  ])('are byte for byte the SQL rendering (TimeZone %s, DateStyle %s)', async (zone, style) => {
    const db = await app.db.pool.connect()
    try {
      await db.query(`SET TimeZone = '${zone}'; SET DateStyle = '${style}'`)
      for (const name of ['conv_all', 'conv odd', 'conv_text_id']) {
        const { sql, wire } = await bothWays(db, table(name))
        expect(wire).toBeDefined()
        const a = records(table(name), sql)
        const b = records(table(name), wire as TextRow[])
        expect(b.deep).toEqual(a.deep)
        expect(renderJson({ records: b.records })).toBe(renderJson({ records: a.records }))
        expect(Buffer.from(renderJsonBytes({ records: b.records }))).toEqual(
          Buffer.from(renderJsonBytes({ records: a.records })),
        )
        expect(b.records).toEqual(a.records) // the records read the same (ids, data parsed, stamps)
        expect((wire as TextRow[]).map((r) => r.id)).toEqual(sql.map((r) => r.id))
      }
    } finally {
      await db.query('RESET TimeZone; RESET DateStyle')
      db.release()
    }
  })

  it('reads an enum as text and the id column once (the record id stands for it), as the byte checks above cover', async () => {
    const contract = await app.engine.ctx.contracts.get()
    for (const [name, idColumn] of [
      ['conv_all', '_s."id"'],
      ['conv odd', '_s."id"'],
      ['conv_text_id', '_s."id"'],
    ] as const) {
      const plan = recordPlan(table(name), contract, '_s')
      expect(plan?.select.split(', ').filter((c) => c.startsWith(idColumn))).toEqual([`${idColumn}::text`])
    }
    expect(recordPlan(table('conv_all'), contract, '_s')?.select).toContain('_s."mood"')
    expect(recordPlan(table('conv_all'), contract, '_s')?.select).not.toContain('to_json(_s."mood")')
  })

  it('flags exactly the rows nested deeper than the limit (brackets inside strings do not count)', async () => {
    const db = await app.db.pool.connect()
    try {
      const { wire } = await bothWays(db, table('conv_all'))
      const deep = (wire as BlockRow[]).filter((r) => r.deep).map((r) => r.id)
      expect(deep).toEqual(['00000000-0000-4000-8000-000000000006', '00000000-0000-4000-8000-000000000007'])
    } finally {
      db.release()
    }
  })

  it('random text and JSON text: the same bytes as the SQL rendering', async () => {
    let seed = 7
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const alphabet = [
      '"',
      '\\',
      '\t',
      '\n',
      '\r',
      '\b',
      '\f',
      '\v',
      '\u0001',
      '\u001f',
      '\u007f',
      'é',
      '😀',
      '\u2028',
      '{',
      '[',
      ']',
      '}',
      ':',
      ',',
      ' ',
      'a',
      'Z',
      '0',
      '\\N',
      'NULL',
      ' BC',
      '+00',
    ]
    const text = () => Array.from({ length: rand(24) }, () => alphabet[rand(alphabet.length)]).join('')
    const values: unknown[] = []
    const tuples: string[] = []
    for (let i = 0; i < 200; i++) {
      const json = JSON.stringify(
        { [text()]: [text(), { k: text() }], n: rand(1000) },
        null,
        rand(3) === 0 ? '\t' : undefined,
      )
      values.push(text(), text(), json, json)
      const k = values.length
      tuples.push(`(gen_random_uuid(), $${k - 3}, $${k - 2}, $${k - 1}::json, $${k}::jsonb)`)
    }
    await app.db.pool.query(
      `INSERT INTO conv_all (id, t, vc, j, jb) VALUES ${tuples.join(', ')}`,
      values.map((v, i) => (i % 4 === 1 ? String(v).slice(0, 20) : v)),
    )
    const db = await app.db.pool.connect()
    try {
      const { sql, wire } = await bothWays(db, table('conv_all'))
      const a = records(table('conv_all'), sql)
      const b = records(table('conv_all'), wire as TextRow[])
      expect(a.records.length).toBeGreaterThan(200)
      expect(renderJson({ records: b.records })).toBe(renderJson({ records: a.records }))
    } finally {
      db.release()
    }
  })

  it('a snapshot served from read-ahead (rendered here) leaves out and records the rows too deep to render', async () => {
    const user = '00000000-0000-4000-8000-0000000000aa'
    const reg = await app.registerClient(user)
    const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, limit: 2 }
    const ids: string[] = []
    let cursor: unknown
    for (let page = 0; page < 500; page++) {
      const r = await app.call('POST', '/sync/snapshot', { user, body: { ...body, cursor } })
      expect(r.status).toBe(200)
      for (const x of r.body.records as SyncRecord[]) if (x.table_name === 'conv_all') ids.push(x.id)
      if (!r.body.has_more) break
      cursor = r.body.cursor
    }
    const { rows } = await app.db.pool.query<{ id: string }>(
      `SELECT id::text FROM conv_all WHERE id NOT IN ('00000000-0000-4000-8000-000000000006',
         '00000000-0000-4000-8000-000000000007') ORDER BY id`,
    )
    expect(ids).toEqual(rows.map((r) => r.id))
    const failures = await app.db.pool.query<{ record_id: string }>(
      `SELECT record_id FROM sync_rule_failures WHERE table_name = 'conv_all' ORDER BY record_id`,
    )
    expect(failures.rows.map((r) => r.record_id)).toEqual([
      '00000000-0000-4000-8000-000000000006',
      '00000000-0000-4000-8000-000000000007',
    ])
  })

  it.each([
    ['ISO, DMY', true],
    ['SQL, DMY', false],
    ['German', false],
  ])('columns whose to_json follows DateStyle (arrays of ranges) under DateStyle %s: wire %s', async (style, wire) => {
    // to_json formats a bare date or timestamp itself, but a range through its output function, which follows the
    // session's DateStyle: rendered under the COPY's DateStyle they would differ from what pages and pulls send.
    const db = await app.db.pool.connect()
    try {
      await db.query(`SET DateStyle = '${style}'`)
      const both = await bothWays(db, table('conv_ranges'))
      const a = records(table('conv_ranges'), both.sql)
      const b = records(table('conv_ranges'), both.wire ?? both.sql)
      expect(renderJson({ records: b.records })).toBe(renderJson({ records: a.records }))
      expect(both.wire !== undefined).toBe(wire) // the SQL rendering, unless the session's DateStyle is ISO already
    } finally {
      await db.query('RESET DateStyle')
      db.release()
    }
  })

  it('tables whose records it cannot render exactly take the SQL path', async () => {
    const db = await app.db.pool.connect()
    try {
      // A timestamp (not timestamptz) updated_at renders differently on the wire; a date id depends on DateStyle.
      expect((await bothWays(db, table('conv_naive'))).wire).toBeUndefined()
      expect((await bothWays(db, table('conv_date_id'))).wire).toBeUndefined()
    } finally {
      db.release()
    }
  })
})
