import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// A pull whose checks pass runs as ONE round trip (the opening rides with the page statement, see pull.ts
// `pullInOneTrip`); every other pull falls back to the opened path. These pulls all come after a served one, so the
// one-trip path is tried first: the answers must be exactly the opened path's.

let app: TestApp
const staleAsked: string[] = []
beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    engine: {
      hooks: {
        onStaleClient: ({ clientId }) => {
          staleAsked.push(clientId)
          return !clientId.startsWith('reject-')
        },
      },
    },
  })
})
afterAll(async () => {
  await app.close()
})

async function bootstrapped(user = randomUUID(), clientId?: string) {
  const reg = await app.registerClient(user, clientId)
  await app.db.pool.query(`UPDATE sync_clients SET last_pull_seq = 0 WHERE user_id = $1 AND client_id = $2`, [
    user,
    reg.clientId,
  ])
  const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, checkpoint: 0 }
  return {
    user,
    ...reg,
    body,
    pull: (extra: Record<string, unknown> = {}) =>
      app.call('POST', '/sync/pull', { user, body: { ...body, ...extra } }),
  }
}

/** Queries the engine's pool connections run while `fn` runs (each is one round trip). */
async function queriesDuring(fn: () => Promise<unknown>): Promise<number> {
  const pool = app.engine.ctx.pool
  const connect = pool.connect
  const wrapped: [pg.PoolClient, pg.PoolClient['query']][] = []
  let n = 0
  const counting = async (): Promise<pg.PoolClient> => {
    const db = await (connect as () => Promise<pg.PoolClient>).call(pool)
    const query = db.query
    wrapped.push([db, query])
    db.query = ((...args: unknown[]) => {
      n++
      return (query as (...a: unknown[]) => unknown).apply(db, args)
    }) as typeof query
    return db
  }
  pool.connect = counting as unknown as typeof pool.connect
  try {
    await fn()
  } finally {
    pool.connect = connect
    for (const [db, query] of wrapped) db.query = query
  }
  return n
}

describe('pull in one round trip', () => {
  it('a pull whose checks pass is one round trip (plus its COMMIT under a deadline), and serves the same page', async () => {
    const c = await bootstrapped()
    const order = randomUUID()
    await app.db.pool.query(`INSERT INTO orders (id, user_id) VALUES ($1, $2)`, [order, c.user])
    const { rows } = await app.db.pool.query(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 'orders', $2, 1) RETURNING seq::text`,
      [`user:${c.user}`, order],
    )
    const from = Number(rows[0].seq) - 1
    const first = await c.pull({ checkpoint: from })
    // The second one prepares its statement on the connection (once per connection), later ones only execute it.
    expect(await c.pull({ checkpoint: from })).toEqual(first)
    let second: { status: number; body: any } | undefined
    const n = await queriesDuring(async () => {
      second = await c.pull({ checkpoint: from })
    })
    // Through the handler (a 5 s deadline by default) the COMMIT goes in its own round trip, after a deadline check.
    expect(n).toBe(2)
    expect(second).toEqual(first)
    // Without a deadline (a library call) the COMMIT travels with the statement: one round trip.
    const direct = await queriesDuring(() => app.engine.pull(c.user, { ...c.body, checkpoint: from }))
    expect(direct).toBe(1)
    expect(first.body.changes.map((r: { id: string }) => r.id)).toEqual([order])
    expect(first.body.checkpoint).toBe(from + 1)
  })

  it('unknown client, another user’s client, wrong pair, never-snapshotted: the opened path’s answers', async () => {
    const c = await bootstrapped()
    expect((await c.pull()).status).toBe(200)
    const unknown = await c.pull({ client_id: `${c.clientId}-x` })
    expect([unknown.status, unknown.body]).toEqual([404, { error: 'client not registered' }])
    const other = await app.call('POST', '/sync/pull', { user: randomUUID(), body: c.body })
    expect([other.status, other.body]).toEqual([404, { error: 'client not registered' }])
    const pair = await c.pull({ schema_hash: 'f'.repeat(64) })
    expect(pair.status).toBe(409)
    expect(pair.body).toMatchObject({ code: 'schema_mismatch', server_schema_version: c.version })
    const freshUser = randomUUID()
    const fresh = await app.registerClient(freshUser)
    const never = await app.call('POST', '/sync/pull', {
      user: freshUser,
      body: { client_id: fresh.clientId, schema_version: fresh.version, schema_hash: fresh.hash, checkpoint: 0 },
    })
    expect(never.body).toMatchObject({ snapshot_required: true, snapshot_reason: 'initial_sync_required' })
    const stored = await app.db.pool.query(`SELECT last_pull_seq FROM sync_clients WHERE client_id = $1`, [
      fresh.clientId,
    ])
    expect(stored.rows).toEqual([{ last_pull_seq: null }])
  })

  it('a deactivated client goes through the stale-client hook: 403 when it rejects, served when it accepts', async () => {
    const bad = await bootstrapped(randomUUID(), `reject-${randomUUID()}`)
    const good = await bootstrapped()
    expect((await good.pull()).status).toBe(200)
    await app.db.pool.query(`UPDATE sync_clients SET is_active = false WHERE client_id = ANY($1)`, [
      [bad.clientId, good.clientId],
    ])
    const rejected = await bad.pull()
    expect(rejected.status).toBe(403)
    const stored = await app.db.pool.query(`SELECT last_pull_at FROM sync_clients WHERE client_id = $1`, [bad.clientId])
    expect(stored.rows).toEqual([{ last_pull_at: null }])
    expect((await good.pull()).status).toBe(200)
    expect(staleAsked).toEqual([bad.clientId, good.clientId])
  })

  it('DDL between pulls: the old pair gets 409 with the new one, which is then served; reverting restores it', async () => {
    const c = await bootstrapped()
    expect((await c.pull()).status).toBe(200)
    await app.db.pool.query(`ALTER TABLE orders ADD COLUMN onetrip_probe TEXT NOT NULL DEFAULT ''`)
    try {
      const stale = await c.pull()
      expect(stale.status).toBe(409)
      expect(stale.body.server_schema_version).toBe(c.version + 1)
      const next = await c.pull({
        schema_version: stale.body.server_schema_version,
        schema_hash: stale.body.server_schema_hash,
      })
      expect(next.status).toBe(200)
      expect(next.body.schema_hash).toBe(stale.body.server_schema_hash)
    } finally {
      await app.db.pool.query(`ALTER TABLE orders DROP COLUMN onetrip_probe`)
    }
    const back = await c.pull()
    expect([back.status, back.body.schema_hash]).toEqual([200, c.hash])
  })
})
