import { createTestApp, NORTHWIND_TABLES, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { JSON_TEXT_TYPES } from '../pull/record.js'
import { ROW_ALIAS } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import { pageColumnsSql } from './render.js'

let app: TestApp
beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    extraSql: `
      CREATE TYPE render_mood AS ENUM ('ok', 'it''s "fine"');
      CREATE DOMAIN render_doc AS jsonb;
      CREATE DOMAIN render_small AS integer;
      CREATE TABLE render_all (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "b" boolean, "i2" smallint, "i4" integer, "i8" bigint, "r" real, "d" double precision, "n" numeric,
        "n2" numeric(12,3), "t" text, "vc" varchar(20), "ch" char(3), "u" uuid, "iv" interval, "j" json, "jb" jsonb,
        "by" bytea, "dt" date, "tm" time, "ttz" time with time zone, "ts" timestamp, "tstz" timestamptz,
        "arr" integer[], "tarr" text[], "mood" render_mood, "doc" render_doc, "small" render_small,
        "it's" text, "with space" int, "ünï" text, "$1" text,
        updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      INSERT INTO render_all (id) VALUES ('00000000-0000-4000-8000-000000000001');
      INSERT INTO render_all VALUES ('00000000-0000-4000-8000-000000000002', true, -32768, 2147483647,
        -9223372036854775808, 'NaN', '-Infinity', 'NaN', 123456789.125, E'q"uo\\\\te\\n\\t\\u0001 ü 😀', 'x''y', 'ab',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day 02:03:04', '{"a": [1, 2 ], "s":"\\u00e9"}',
        '{"z": 1, "a": {"b": null}, "big": 12345678901234567890.5}', '\\x00ff', 'infinity', '24:00:00',
        '10:00:00+05:30', '-infinity', '2026-01-02 03:04:05.678901+02', '{1,NULL,3}', '{"a,b",NULL,"\\"q\\""}',
        'it''s "fine"', '{"k": [true]}', 7, 'x', 1, 'ünï', '$2', now(), NULL);
      INSERT INTO render_all (id, b, r, d, n, tstz, dt) VALUES ('00000000-0000-4000-8000-000000000003', false,
        'Infinity', 1e308, '-Infinity', 'infinity', '4713-01-01 BC');
      CREATE TABLE "render odd" (id bigint PRIMARY KEY, "quo""te" text, "back\\slash" int,
        updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      INSERT INTO "render odd" VALUES (1, 'a', 2, now(), NULL);`,
    tables: [
      ...NORTHWIND_TABLES,
      { tableName: 'render_all', pushPolicy: 'disabled' },
      { tableName: 'render odd', pushPolicy: 'disabled' },
    ],
  })
})
afterAll(async () => {
  await app.close()
})

describe('snapshot page rendering', () => {
  it('data is byte for byte what to_json(row) renders, for every table and column type', async () => {
    const contract = await app.engine.ctx.contracts.get()
    let compared = 0
    for (const t of app.engine.ctx.tables as readonly ResolvedTable[]) {
      const { rows } = await app.db.pool.query<{ want: string; data: string }>({
        text: `SELECT to_json(${ROW_ALIAS}.*)::text AS want, ${pageColumnsSql(t, contract)}
                 FROM ${t.sqlName} ${ROW_ALIAS}`,
        types: JSON_TEXT_TYPES,
      })
      for (const r of rows) expect(r.data).toBe(r.want)
      compared += rows.length
    }
    expect(compared).toBeGreaterThan(10)
  })

  it('a snapshot serves those tables (a column named like a parameter included)', async () => {
    const user = '00000000-0000-4000-8000-0000000000aa'
    const reg = await app.registerClient(user)
    const r = await app.call('POST', '/sync/snapshot', {
      user,
      body: { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, limit: 1000 },
    })
    expect(r.status).toBe(200)
    const rows = r.body.records.filter((x: { table_name: string }) => x.table_name === 'render_all')
    expect(rows).toHaveLength(3)
    expect(rows[1].data.$1).toBe('$2')
    expect(rows[1].data["it's"]).toBe('x')
  })
})
