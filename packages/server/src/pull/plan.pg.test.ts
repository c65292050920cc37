import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Page statements run with a generic plan (no planning per page), made again on a connection once a relation the
// statement reads has outgrown the size it had when the plan was made (request/statements.ts, `outgrown`): a plan
// made while a table was small must not go on scanning it once it has grown.

let app: TestApp
beforeAll(async () => {
  app = await createTestApp({ seed: true })
})
afterAll(async () => {
  await app.close()
})

/** The texts of the queries the engine's pool connections run while `fn` runs. */
async function queriesDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const pool = app.engine.ctx.pool
  const connect = pool.connect
  const wrapped: [pg.PoolClient, pg.PoolClient['query']][] = []
  const texts: string[] = []
  const recording = async (): Promise<pg.PoolClient> => {
    const db = await (connect as () => Promise<pg.PoolClient>).call(pool)
    const query = db.query
    wrapped.push([db, query])
    db.query = ((...args: unknown[]) => {
      const q = args[0] as string | { text: string }
      texts.push(typeof q === 'string' ? q : q.text)
      return (query as (...a: unknown[]) => unknown).apply(db, args)
    }) as typeof query
    return db
  }
  pool.connect = recording as unknown as typeof pool.connect
  try {
    await fn()
  } finally {
    pool.connect = connect
    for (const [db, query] of wrapped) db.query = query
  }
  return texts
}

describe('pull page plans', () => {
  it('a generic plan, made again once a table the page reads has grown past twice its size then', async () => {
    const user = randomUUID()
    const reg = await app.registerClient(user)
    await app.db.pool.query(`UPDATE sync_clients SET last_pull_seq = 0 WHERE user_id = $1`, [user])
    const order = randomUUID()
    await app.db.pool.query(`INSERT INTO orders (id, user_id) VALUES ($1, $2)`, [order, user])
    const { rows } = await app.db.pool.query(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 'orders', $2, 1) RETURNING seq::text`,
      [`user:${user}`, order],
    )
    const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
    const pull = () => app.call('POST', '/sync/pull', { user, body: { ...body, checkpoint: Number(rows[0].seq) - 1 } })
    const first = await pull()
    expect(first.body.changes.map((r: { id: string }) => r.id)).toEqual([order])
    // Opened path, then the one-trip statement run as is and prepared, then executed: its plan made and kept.
    for (let i = 0; i < 3; i++) expect(await pull()).toEqual(first)
    const kept = (await queriesDuring(pull)).join('\n')
    expect(kept).toMatch(/plan_cache_mode = force_generic_plan;\s*EXECUTE synchro_pull_/)
    expect(kept).not.toContain('DEALLOCATE')

    // orders grows past twice its size (plus the 64 KiB of slack): the next page prepares the statement again.
    const { rows: size } = await app.db.pool.query(`SELECT pg_relation_size('orders') AS b`)
    const grow = Math.ceil((2 * Number(size[0].b) + 200_000) / 1_500)
    await app.db.pool.query(
      `INSERT INTO orders (user_id, ship_address) SELECT $1, repeat('x', 1500) FROM generate_series(1, $2::int)`,
      [randomUUID(), grow],
    )
    let served: unknown
    const replanned = await queriesDuring(async () => {
      served = await pull()
    })
    expect(served).toEqual(first)
    expect(replanned.some((q) => /^DEALLOCATE synchro_pull_/.test(q))).toBe(true)
    expect(replanned.some((q) => /^PREPARE synchro_pull_/.test(q))).toBe(true)
    // Planned for the grown table: kept again.
    expect(await pull()).toEqual(first)
    expect((await queriesDuring(pull)).join('\n')).not.toContain('DEALLOCATE')
  })
})
