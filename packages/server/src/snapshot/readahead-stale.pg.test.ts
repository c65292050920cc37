import { randomUUID } from 'node:crypto'
import { createTestApp, databaseIdle, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// A client deactivated between a page and the background read that page started: the read must not put the client
// to the onStaleClient hook (user code, meant for the client's requests); the client's next page does.
const asked: string[] = []
let app: TestApp
beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    engine: {
      snapshotReadAhead: { rows: 4 },
      hooks: {
        onStaleClient: ({ clientId }) => {
          asked.push(clientId)
          return true
        },
      },
    },
  })
})
afterAll(async () => {
  await app.close()
})

describe('snapshot read-ahead and deactivated clients', () => {
  it('a background read refuses a client deactivated after its page; the next page asks the hook', async () => {
    const user = randomUUID()
    const reg = await app.registerClient(user)
    await app.db.pool.query(`INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 12)`, [user])
    const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, limit: 2 }

    // The page's own connection is the first taken; the background read's is the next: the client is deactivated
    // (on a connection of its own) just before that read opens its request.
    const pool = app.engine.ctx.pool
    const connect = pool.connect
    let taken = 0
    const other = new pg.Client({ connectionString: app.db.url })
    await other.connect()
    pool.connect = (async (...args: unknown[]) => {
      if (args.length > 0) return (connect as (...a: unknown[]) => unknown).apply(pool, args)
      taken++
      if (taken === 2) {
        await other.query(`UPDATE sync_clients SET is_active = false WHERE user_id = $1 AND client_id = $2`, [
          user,
          reg.clientId,
        ])
      }
      return (connect as () => Promise<pg.PoolClient>).call(pool)
    }) as typeof pool.connect
    let cursor: unknown
    try {
      const first = await app.call('POST', '/sync/snapshot', { user, body })
      expect(first.status).toBe(200)
      expect(first.body.has_more).toBe(true)
      cursor = first.body.cursor
      await databaseIdle(app.db.pool)
      expect(taken).toBeGreaterThanOrEqual(2) // the background read did open (and was refused)
      expect(asked).toEqual([])
    } finally {
      pool.connect = connect
      await other.end()
    }

    const next = await app.call('POST', '/sync/snapshot', { user, body: { ...body, cursor } })
    expect(next.status).toBe(200)
    expect(asked).toEqual([reg.clientId])
  })
})
