import { randomUUID } from 'node:crypto'
import type { SnapshotRequest } from '@synchro/protocol'
import { createTestApp, NORTHWIND_TABLES, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

type Cursor = NonNullable<SnapshotRequest['cursor']>

// Review (session 7): parallel read-ahead over non-uuid keys — text with an ICU collation (order ≠ C), integer,
// numeric (`id::text COLLATE "C"`) — on global tables, with rows inserted, soft- and hard-deleted between pages.
let app: TestApp
beforeAll(async () => {
  app = await createTestApp({
    engine: { snapshotReadAhead: { rows: 3 } },
    extraSql: `
      CREATE TABLE ra_text (id text COLLATE "en-US-x-icu" PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      CREATE TABLE ra_int (id integer PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      CREATE TABLE ra_num (id numeric PRIMARY KEY, updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      INSERT INTO ra_text (id) SELECT c || g FROM generate_series(10, 29) g, unnest(ARRAY['a', 'B', 'ä', 'b', 'A']) c;
      INSERT INTO ra_int (id) SELECT g * 10 FROM generate_series(-20, 40) g;
      INSERT INTO ra_num (id) SELECT g * 10 + 0.5 FROM generate_series(-20, 40) g;`,
    tables: [
      ...NORTHWIND_TABLES,
      { tableName: 'ra_text', pushPolicy: 'disabled' },
      { tableName: 'ra_int', pushPolicy: 'disabled' },
      { tableName: 'ra_num', pushPolicy: 'disabled' },
    ],
  })
})
afterAll(async () => {
  await app.close()
})

const settle = () => new Promise((r) => setTimeout(r, 30))

describe('parallel read-ahead over non-uuid keys (review)', () => {
  it('rows that stay are served exactly once, in the key order, whatever changes between pages', async () => {
    const user = randomUUID()
    const reg = await app.registerClient(user)
    const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
    const q = (sql: string) => app.db.pool.query(sql)
    const steady = {
      ra_text: (await q(`SELECT id FROM ra_text WHERE id NOT LIKE '%7' ORDER BY id`)).rows.map((r) => r.id),
      ra_int: (await q(`SELECT id::text FROM ra_int WHERE id % 70 <> 0 ORDER BY id`)).rows.map((r) => r.id),
      ra_num: (
        await q(`SELECT id::text FROM ra_num WHERE (id - 0.5) % 70 <> 0 ORDER BY id::text COLLATE "C"`)
      ).rows.map((r) => r.id),
    }
    const seen: Record<string, string[]> = { ra_text: [], ra_int: [], ra_num: [] }
    let cursor: Cursor | undefined
    for (let i = 0; i < 500; i++) {
      const r = await app.call('POST', '/sync/snapshot', { user, body: { ...pair, cursor, limit: 2 + (i % 3) } })
      expect(r.status).toBe(200)
      for (const x of r.body.records) seen[x.table_name]?.push(x.id)
      if (!r.body.has_more) break
      cursor = r.body.cursor
      // Changes anywhere in key order: inserts, soft deletes and hard deletes of the rows outside `steady`.
      await q(`INSERT INTO ra_text (id) VALUES ('c${i}'), ('Ä${i}') ON CONFLICT DO NOTHING`)
      await q(`INSERT INTO ra_int (id) VALUES (${i * 10 + 5}) ON CONFLICT DO NOTHING`)
      await q(`INSERT INTO ra_num (id) VALUES (${i}.25) ON CONFLICT DO NOTHING`)
      const del = i % 2 === 0 ? 'UPDATE %s SET deleted_at = now() WHERE' : 'DELETE FROM %s WHERE'
      await q(
        `${del.replace('%s', 'ra_text')} id IN (SELECT id FROM ra_text WHERE id LIKE '%7' AND deleted_at IS NULL LIMIT 1)`,
      )
      await q(
        `${del.replace('%s', 'ra_int')} id IN (SELECT id FROM ra_int WHERE id % 70 = 0 AND deleted_at IS NULL LIMIT 1)`,
      )
      await q(
        `${del.replace('%s', 'ra_num')} id IN (SELECT id FROM ra_num WHERE (id - 0.5) % 70 = 0 AND deleted_at IS NULL LIMIT 1)`,
      )
      if (i % 3 === 0) await settle()
    }
    const order = {
      ra_text: (ids: string[]) =>
        q(
          `SELECT x FROM unnest($1::text[]) x ORDER BY x COLLATE "en-US-x-icu"`.replace(
            '$1',
            `ARRAY[${ids.map((s) => `'${s}'`).join(',')}]`,
          ),
        ),
    }
    for (const t of ['ra_text', 'ra_int', 'ra_num'] as const) {
      const got = seen[t] as string[]
      expect(new Set(got).size, t).toBe(got.length)
      for (const id of steady[t]) expect(got, t).toContain(id)
    }
    const sorted = (await order.ra_text(seen.ra_text as string[])).rows.map((r) => r.x)
    expect(seen.ra_text).toEqual(sorted)
    expect(seen.ra_int).toEqual([...(seen.ra_int as string[])].sort((a, b) => Number(a) - Number(b)))
    expect(seen.ra_num).toEqual([...(seen.ra_num as string[])].sort())
  })
})
