import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// A table rewritten (ALTER TABLE … TYPE, here to the same type: the contract stays the same) between the moment a
// page's snapshot is taken and its read of the table: the old snapshot sees the new file empty. The page must not
// take the table for done (the rest of it would never reach the client).
let app: TestApp
beforeAll(async () => {
  app = await createTestApp({
    engine: { snapshotReadAhead: { rows: 0 } },
    extraSql: `
      CREATE TABLE rw_items (id integer PRIMARY KEY, label text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz);
      INSERT INTO rw_items (id, label) SELECT g, 'item ' || g FROM generate_series(1, 10) g;
      CREATE TABLE rw_parts (id integer PRIMARY KEY, label text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz) PARTITION BY RANGE (id);
      CREATE TABLE rw_parts_low PARTITION OF rw_parts FOR VALUES FROM (0) TO (100);
      CREATE TABLE rw_parts_high PARTITION OF rw_parts FOR VALUES FROM (100) TO (200);
      INSERT INTO rw_parts (id, label) SELECT g, 'part ' || g FROM generate_series(95, 104) g;`,
    tables: [
      { tableName: 'rw_items', pushPolicy: 'disabled' },
      { tableName: 'rw_parts', pushPolicy: 'disabled' },
    ],
  })
})
afterAll(async () => {
  await app.close()
})

/**
 * Rewrites `table` (on a connection of its own) right before each of the next `times` statements of the engine
 * that read it: after their transaction's snapshot was taken, before they lock the table.
 */
function rewriteBeforeReads(times: number, table = 'rw_items'): () => Promise<number> {
  const pool = app.engine.ctx.pool
  const connect = pool.connect
  const other = new pg.Client({ connectionString: app.db.url })
  const ready = other.connect()
  let left = times
  pool.connect = (async (...args: unknown[]) => {
    if (args.length > 0) return (connect as (...a: unknown[]) => unknown).apply(pool, args)
    const client = await (connect as () => Promise<pg.PoolClient>).call(pool)
    const query = client.query
    client.query = (async (...q: unknown[]) => {
      const text = typeof q[0] === 'string' ? q[0] : (q[0] as { text?: string } | undefined)?.text
      if (left > 0 && text?.includes(`FROM "${table}"`)) {
        left--
        await ready
        await other.query(`ALTER TABLE ${table} ALTER COLUMN label TYPE text USING label || ''`)
      }
      return (query as (...a: unknown[]) => unknown).apply(client, q)
    }) as typeof client.query
    const release = client.release
    client.release = ((...r: unknown[]) => {
      client.query = query
      client.release = release
      return (release as (...a: unknown[]) => unknown).apply(client, r)
    }) as typeof client.release
    return client
  }) as typeof pool.connect
  return async () => {
    pool.connect = connect
    await other.end()
    return times - left
  }
}

/** A first snapshot page of a new client during which `table` is rewritten `times` times; and that client. */
async function pageDuringRewrites(times: number, table?: string) {
  const user = randomUUID()
  const reg = await app.registerClient(user)
  const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, limit: 100 }
  const restore = rewriteBeforeReads(times, table)
  try {
    return { user, body, res: await app.call('POST', '/sync/snapshot', { user, body }) }
  } finally {
    expect(await restore()).toBe(times) // the rewrites did happen inside the page
  }
}

const ids = (records: { id: string; table_name: string }[], table: string) =>
  records.filter((r) => r.table_name === table).map((r) => r.id)

describe('a table rewritten while a snapshot page reads it', () => {
  it('the page starts again on a fresh snapshot and serves every row (not an empty table)', async () => {
    const { res } = await pageDuringRewrites(1)
    expect(res.status).toBe(200)
    expect(ids(res.body.records, 'rw_items')).toEqual(Array.from({ length: 10 }, (_, i) => `${i + 1}`))
    expect(ids(res.body.records, 'rw_parts')).toHaveLength(10)
    expect(res.body.has_more).toBe(false)
  })

  it('a partitioned table: its partitions rewritten (the parent has no file) start the page again too', async () => {
    const { res } = await pageDuringRewrites(1, 'rw_parts')
    expect(res.status).toBe(200)
    expect(ids(res.body.records, 'rw_parts')).toEqual(Array.from({ length: 10 }, (_, i) => `${i + 95}`))
  })

  it('rewritten again on the second try: 503 (retry later), never a page without the rows', async () => {
    const { user, body, res } = await pageDuringRewrites(2)
    expect(res.status).toBe(503)
    const next = await app.call('POST', '/sync/snapshot', { user, body })
    expect(next.status).toBe(200)
    expect(next.body.records).toHaveLength(20)
  })
})
