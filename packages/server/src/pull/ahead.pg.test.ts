import { randomUUID } from 'node:crypto'
import { createTestApp, databaseIdle, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Pull read-ahead (ahead.ts): after a page with more, the next page is read in the background and served to the
// request that asks for exactly it, when nothing it depends on changed. No capture runs here, so a row updated
// directly gets no changelog entry: a page read ahead shows the row as it was, a page read afresh as it is now.

let app: TestApp
beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    engine: { pullReadAhead: true, hooks: { onStaleClient: ({ clientId }) => !clientId.startsWith('reject-') } },
  })
})
afterAll(async () => {
  await app.close()
})

const CHANGED = 'changed after the read-ahead'

async function bootstrapped(user: string, clientId?: string, on: TestApp = app) {
  const reg = await on.registerClient(user, clientId)
  await on.db.pool.query(`UPDATE sync_clients SET last_pull_seq = 0 WHERE user_id = $1 AND client_id = $2`, [
    user,
    reg.clientId,
  ])
  const body = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, limit: 1 }
  return {
    ...reg,
    body,
    pull: (extra: Record<string, unknown>) => on.call('POST', '/sync/pull', { user, body: { ...body, ...extra } }),
  }
}

/**
 * Three orders of a fresh user with one changelog entry each; page 1 (limit 1) served, the page of the second order
 * read ahead, then that order changed directly (no entry).
 */
async function afterFirstPage(clientId?: string, on: TestApp = app) {
  const user = randomUUID()
  const c = await bootstrapped(user, clientId, on)
  const orders = [randomUUID(), randomUUID(), randomUUID()]
  let from: number | undefined
  for (const id of orders) {
    await on.db.pool.query(`INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, 'before')`, [id, user])
    const { rows } = await on.db.pool.query(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 'orders', $2, 1)
       RETURNING seq::int`,
      [`user:${user}`, id],
    )
    from ??= rows[0].seq - 1
  }
  const first = await c.pull({ checkpoint: from })
  expect(first.status).toBe(200)
  expect([first.body.changes.map((r: { id: string }) => r.id), first.body.has_more]).toEqual([[orders[0]], true])
  await databaseIdle(on.db.pool)
  await on.db.pool.query(`UPDATE orders SET ship_address = $2 WHERE id = $1`, [orders[1], CHANGED])
  return { user, c, orders, next: first.body.checkpoint as number }
}

const stored = async (clientId: string) =>
  Number(
    (await app.db.pool.query(`SELECT last_pull_seq FROM sync_clients WHERE client_id = $1`, [clientId])).rows[0]
      .last_pull_seq,
  )

const address = (res: { body: any }) =>
  res.body.changes.map((r: { data: { ship_address: string } }) => r.data.ship_address)

describe('pull read-ahead', () => {
  it('the next page is read ahead, advances nothing until asked for, then is served on an exact match', async () => {
    const { c, orders, next } = await afterFirstPage()
    expect(await stored(c.clientId)).toBe(next)
    const second = await c.pull({ checkpoint: next })
    expect(second.status).toBe(200)
    expect(second.body.changes.map((r: { id: string }) => r.id)).toEqual([orders[1]])
    expect(address(second)).toEqual(['before']) // as read ahead, before the change
    expect(second.body.has_more).toBe(true)
    expect(await stored(c.clientId)).toBe(second.body.checkpoint)
    // The change reaches the client with its own changelog entry, after the page (what capture writes).
    const again = await c.pull({ checkpoint: next })
    expect(address(again)).toEqual([CHANGED]) // taken once: a repeated request reads afresh
  })

  it('another checkpoint or limit, another client or user: read afresh, never another client’s page', async () => {
    const a = await afterFirstPage()
    expect(address(await a.c.pull({ checkpoint: a.next, limit: 2 }))).toEqual([CHANGED, 'before'])
    const b = await afterFirstPage()
    expect(address(await b.c.pull({ checkpoint: b.next - 1 }))).toEqual(['before'])
    expect((await b.c.pull({ checkpoint: b.next })).body.changes).toHaveLength(1)
    const c = await afterFirstPage()
    const sibling = await bootstrapped(c.user)
    expect(address(await sibling.pull({ checkpoint: c.next }))).toEqual([CHANGED])
    // Another user with the same client id and checkpoint: its own (empty) bucket, nothing of the first user's.
    const d = await afterFirstPage(`shared-${randomUUID()}`)
    const stranger = await bootstrapped(randomUUID(), d.c.clientId)
    const theirs = await stranger.pull({ checkpoint: d.next })
    expect([theirs.status, theirs.body.changes]).toEqual([200, []])
    expect(address(await d.c.pull({ checkpoint: d.next }))).toEqual(['before'])
  })

  it('a push, a new entry in a subscribed bucket or a resubscription since: read afresh', async () => {
    const pushed = await afterFirstPage()
    await app.db.pool.query(`UPDATE sync_clients SET last_push_at = now() WHERE client_id = $1`, [pushed.c.clientId])
    expect(address(await pushed.c.pull({ checkpoint: pushed.next }))).toEqual([CHANGED])
    const entry = await afterFirstPage()
    await app.db.pool.query(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 'orders', $2, 3)`,
      [`user:${entry.user}`, randomUUID()],
    )
    expect(address(await entry.c.pull({ checkpoint: entry.next }))).toEqual([CHANGED])
    const subs = await afterFirstPage()
    await app.db.pool.query(`UPDATE sync_clients SET bucket_subs = $2 WHERE client_id = $1`, [
      subs.c.clientId,
      [`user:${subs.user}`],
    ])
    expect(address(await subs.c.pull({ checkpoint: subs.next }))).toEqual([CHANGED])
  })

  it('a deactivated client, DDL or compaction since: the answers of a pull without read-ahead', async () => {
    const stale = await afterFirstPage(`reject-${randomUUID()}`)
    await app.db.pool.query(`UPDATE sync_clients SET is_active = false WHERE client_id = $1`, [stale.c.clientId])
    expect((await stale.c.pull({ checkpoint: stale.next })).status).toBe(403)
    expect(await stored(stale.c.clientId)).toBe(stale.next)
    const ddl = await afterFirstPage()
    await app.db.pool.query(`ALTER TABLE orders ADD COLUMN ahead_probe TEXT NOT NULL DEFAULT ''`)
    try {
      expect((await ddl.c.pull({ checkpoint: ddl.next })).status).toBe(409)
    } finally {
      await app.db.pool.query(`ALTER TABLE orders DROP COLUMN ahead_probe`)
    }
    const compacted = await afterFirstPage()
    await app.db.pool.query(
      `INSERT INTO sync_compaction_state (max_compacted_seq) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM sync_compaction_state)`,
      [compacted.next + 1],
    )
    await app.db.pool.query(`UPDATE sync_compaction_state SET max_compacted_seq = GREATEST(max_compacted_seq, $1)`, [
      compacted.next + 1,
    ])
    const gone = await compacted.c.pull({ checkpoint: compacted.next })
    expect(gone.body).toMatchObject({ snapshot_required: true, snapshot_reason: 'checkpoint_before_retention' })
  })

  it('an entry being written while the page was read ahead: has_more, as a pull now answers', async () => {
    // The capture draws seqs inside its batch transaction: while a batch is being written, the highest seq issued is
    // past every entry a page can see. An entry of that batch commits after the read-ahead and must still count.
    const user = randomUUID()
    const c = await bootstrapped(user)
    const orders = [randomUUID(), randomUUID(), randomUUID()]
    const entry = `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 'orders', $2, 1)
                   RETURNING seq::int`
    let from: number | undefined
    for (const id of orders) {
      await app.db.pool.query(`INSERT INTO orders (id, user_id) VALUES ($1, $2)`, [id, user])
      if (id === orders[2]) break
      const { rows } = await app.db.pool.query(entry, [`user:${user}`, id])
      from ??= rows[0].seq - 1
    }
    const batch = await app.db.pool.connect()
    let next = 0
    try {
      await batch.query('BEGIN')
      await batch.query(entry, [`user:${user}`, orders[2]]) // not committed yet
      const first = await c.pull({ checkpoint: from })
      expect([first.body.changes.map((r: { id: string }) => r.id), first.body.has_more]).toEqual([[orders[0]], true])
      next = first.body.checkpoint
      // The page after it is read ahead now (limit 1: orders[1], nothing after it yet); wait until it has run.
      for (let i = 0; ; i++) {
        const { rows } = await app.db.pool.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND state NOT IN ('idle', 'idle in transaction')
              AND pid <> pg_backend_pid()`,
        )
        if (rows[0].n === 0) break
        if (i > 200) throw new Error('the read-ahead did not finish')
        await new Promise((r) => setTimeout(r, 20))
      }
      await batch.query('COMMIT')
    } finally {
      batch.release()
    }
    const second = await c.pull({ checkpoint: next })
    expect(second.body.changes.map((r: { id: string }) => r.id)).toEqual([orders[1]])
    expect(second.body.has_more).toBe(true) // orders[2]'s entry is there now
  })

  it('none by default, nor when the read-ahead TTL is 0, nor for a page above the byte cap (a quarter of maxBytes)', async () => {
    for (const engine of [
      {},
      { pullReadAhead: true, snapshotReadAhead: { ttlMs: 0 } },
      { pullReadAhead: true, snapshotReadAhead: { maxBytes: 1_000 } },
    ]) {
      const other = await createTestApp({ seed: true, engine })
      try {
        const { c, next } = await afterFirstPage(undefined, other)
        expect(address(await c.pull({ checkpoint: next }))).toEqual([CHANGED])
      } finally {
        await other.close()
      }
    }
  })
})
