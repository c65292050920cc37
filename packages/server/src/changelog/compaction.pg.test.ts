import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigurationError } from '../errors.js'
import type { CompactionResult } from './compaction.js'

const DAY = 24 * 60 * 60 * 1000

interface Client {
  user: string
  clientId: string
  pull(body?: Record<string, unknown>): Promise<{ status: number; body: any }>
  snap(body?: Record<string, unknown>): Promise<{ status: number; body: any }>
  set(sql: string, params?: unknown[]): Promise<void>
  row(): Promise<{ last_pull_seq: string | null; is_active: boolean; last_pull_at: string | null }>
}

async function client(on: TestApp, user: string = randomUUID()): Promise<Client> {
  const reg = await on.registerClient(user)
  const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
  return {
    user,
    clientId: reg.clientId,
    pull: (body = {}) => on.call('POST', '/sync/pull', { user, body: { ...pair, checkpoint: 0, ...body } }),
    snap: (body = {}) => on.call('POST', '/sync/snapshot', { user, body: { ...pair, ...body } }),
    set: async (assignments, params = []) => {
      await on.db.pool.query(`UPDATE sync_clients SET ${assignments} WHERE client_id = $${params.length + 1}`, [
        ...params,
        reg.clientId,
      ])
    },
    row: async () =>
      (
        await on.db.pool.query(
          `SELECT last_pull_seq::text, is_active, last_pull_at::text FROM sync_clients WHERE client_id = $1`,
          [reg.clientId],
        )
      ).rows[0],
  }
}

/** n changelog entries for real orders of `user` (so pulls hydrate them); returns their seqs. */
async function entries(on: TestApp, user: string, n: number): Promise<number[]> {
  const { rows } = await on.db.pool.query<{ seq: string }>(
    `WITH o AS (INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, $2) RETURNING id)
     INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
     SELECT 'user:' || $1, 'orders', id::text, 1 FROM o RETURNING seq::text`,
    [user, n],
  )
  return rows.map((r) => Number(r.seq)).sort((a, b) => a - b)
}

async function boundary(on: TestApp): Promise<number> {
  const { rows } = await on.db.pool.query(`SELECT max_compacted_seq::text AS s FROM sync_compaction_state`)
  return Number(rows[0].s)
}

describe('§3 I compaction', () => {
  let app: TestApp
  const results: CompactionResult[] = []
  beforeAll(async () => {
    app = await createTestApp({
      seed: true,
      engine: { compaction: { batchSize: 3 }, hooks: { onCompaction: (r) => results.push(r) } },
    })
  })
  afterAll(async () => {
    await app.close()
  })

  it('113 defaults: 7 days stale threshold, batches of 10 000', async () => {
    const d = await createTestApp({ engine: { compaction: {} } })
    try {
      expect(d.engine.ctx.compaction).toMatchObject({ staleThresholdMs: 7 * DAY, batchSize: 10_000 })
    } finally {
      await d.close()
    }
  })

  it('115 no active client with a checkpoint → safe seq 0, nothing deleted', async () => {
    const c = await client(app)
    await entries(app, c.user, 5)
    const r = await app.engine.runCompaction()
    expect(r).toEqual({ deactivatedClients: 0, safeSeq: 0, deletedEntries: 0 })
    expect(results.at(-1)).toEqual(r)
    expect(await boundary(app)).toBe(0)
    await c.set(`is_active = false`)
  })

  it('114 stale clients are deactivated (never-synced ones never); the count is reported', async () => {
    const stale = await client(app)
    await stale.set(`last_sync_at = now() - interval '8 days', last_pull_seq = 1`)
    const fresh = await client(app)
    await fresh.set(`last_sync_at = now() - interval '1 day'`)
    const never = await client(app)
    await never.set(`created_at = now() - interval '30 days'`)
    const r = await app.engine.runCompaction()
    expect(r.deactivatedClients).toBe(1)
    expect((await stale.row()).is_active).toBe(false)
    expect((await fresh.row()).is_active).toBe(true)
    expect((await never.row()).is_active).toBe(true)
    expect(r.safeSeq).toBe(0) // the stale client no longer holds compaction back; nobody else has a checkpoint
    expect((await app.engine.runCompaction()).deactivatedClients).toBe(0)
  })

  it('116 / Decision 1 A(20) B(10) → safe 10, deleted in batches; B at the boundary pulls normally; a lower checkpoint must snapshot', async () => {
    const a = await client(app)
    const b = await client(app)
    const seqs = await entries(app, a.user, 25)
    const bSeqs = await entries(app, b.user, 3)
    const safe = seqs[9] as number
    await a.set(`last_pull_seq = $1, last_sync_at = now()`, [seqs[19]])
    await b.set(`last_pull_seq = $1, last_sync_at = now()`, [safe])
    const { rows: below } = await app.db.pool.query(`SELECT count(*)::int AS n FROM sync_changelog WHERE seq <= $1`, [
      safe,
    ])
    const r = await app.engine.runCompaction()
    expect(r.safeSeq).toBe(safe)
    expect(r.deletedEntries).toBe(below[0].n)
    expect(r.deletedEntries).toBeGreaterThan(3) // several batches of 3
    expect(results.at(-1)).toEqual(r)
    expect(await boundary(app)).toBe(safe)
    const { rows: left } = await app.db.pool.query(`SELECT min(seq)::int AS m FROM sync_changelog`)
    expect(left[0].m).toBe(safe + 1)

    // A gets its data
    const pa = await a.pull({ checkpoint: seqs[19] })
    expect(pa.status).toBe(200)
    expect(pa.body).not.toHaveProperty('snapshot_required')
    expect(pa.body.changes).toHaveLength(5)
    // B, the slowest client, sits exactly on the boundary: not forced to rebuild (50 [B] fixed)
    const pb = await b.pull({ checkpoint: safe, limit: 1000 })
    expect(pb.body).not.toHaveProperty('snapshot_required')
    expect(pb.body.changes.map((x: { id: string }) => x.id)).toHaveLength(3)
    expect(bSeqs.every((s) => s > safe)).toBe(true)

    // 49: a checkpoint below the boundary → checkpoint_before_retention, echoed, no side effects
    const before = await b.row()
    const low = await b.pull({ checkpoint: safe - 1 })
    expect(low.body).toEqual({
      changes: [],
      deletes: [],
      checkpoint: safe - 1,
      has_more: false,
      snapshot_required: true,
      snapshot_reason: 'checkpoint_before_retention',
      schema_version: expect.any(Number),
      schema_hash: expect.any(String),
    })
    expect(await b.row()).toEqual(before)
    // 51 [B] fixed: checkpoint 0 for a client that pulled before is checked against retention too
    const zero = await b.pull({ checkpoint: 0 })
    expect(zero.body.snapshot_reason).toBe('checkpoint_before_retention')
    // a client that never completed a snapshot still gets initial_sync_required first
    const fresh = await client(app)
    expect((await fresh.pull({ checkpoint: 0 })).body.snapshot_reason).toBe('initial_sync_required')
  })

  it('Decision 1: the boundary survives an empty changelog; Decision 8 still detects a checkpoint from the future', async () => {
    const c = await client(app)
    const seqs = await entries(app, c.user, 2)
    const top = seqs[1] as number
    await app.db.pool.query(`UPDATE sync_clients SET is_active = false`)
    await c.set(`is_active = true, last_pull_seq = $1, last_sync_at = now()`, [top])
    const r = await app.engine.runCompaction()
    expect(r.safeSeq).toBe(top)
    expect((await app.db.pool.query(`SELECT count(*)::int AS n FROM sync_changelog`)).rows[0].n).toBe(0)
    expect(await boundary(app)).toBe(top)
    expect((await c.pull({ checkpoint: top - 1 })).body.snapshot_reason).toBe('checkpoint_before_retention')
    const ok = await c.pull({ checkpoint: top })
    expect(ok.body).not.toHaveProperty('snapshot_required')
    expect(ok.body.checkpoint).toBe(top)
    expect((await c.pull({ checkpoint: top + 1000 })).body.snapshot_reason).toBe('history_unavailable')
    // the boundary never moves down
    await app.engine.runCompaction()
    expect(await boundary(app)).toBe(top)
  })

  it('Decision 1: a snapshot taken while compaction has emptied the changelog is followed by normal pulls', async () => {
    // Every active client caught up, so compaction deleted the whole changelog (a quiet system). A new device then
    // takes its initial snapshot: the checkpoint it gets must not lie below the retention boundary, or every pull
    // from it answers checkpoint_before_retention and the device rebuilds again and again.
    const c = await client(app)
    const seqs = await entries(app, c.user, 2)
    const top = seqs[1] as number
    await app.db.pool.query(`UPDATE sync_clients SET is_active = false`)
    await c.set(`is_active = true, last_pull_seq = $1, last_sync_at = now()`, [top])
    await app.engine.runCompaction()
    expect((await app.db.pool.query(`SELECT count(*)::int AS n FROM sync_changelog`)).rows[0].n).toBe(0)
    const fresh = await client(app)
    let cursor: unknown
    let checkpoint = -1
    for (let i = 0; i < 20; i++) {
      const s = await fresh.snap({ cursor, limit: 1000 })
      expect(s.status).toBe(200)
      checkpoint = s.body.checkpoint
      if (!s.body.has_more) break
      cursor = s.body.cursor
    }
    expect(checkpoint).toBeGreaterThanOrEqual(await boundary(app))
    const p = await fresh.pull({ checkpoint })
    expect(p.status).toBe(200)
    expect(p.body).not.toHaveProperty('snapshot_required')
  })

  it('117 a deactivated client may still pull; register or a completed snapshot reactivates it', async () => {
    const c = await client(app)
    await c.set(`is_active = false, last_pull_seq = $1`, [await boundary(app)])
    const p = await c.pull({ checkpoint: await boundary(app) })
    expect(p.status).toBe(200)
    expect((await c.row()).is_active).toBe(false)
    await app.registerClient(c.user, c.clientId)
    expect((await c.row()).is_active).toBe(true)
    await c.set(`is_active = false`)
    for (let cursor: unknown, i = 0; i < 10; i++) {
      const s = await c.snap({ cursor, limit: 1000 })
      if (!s.body.has_more) break
      cursor = s.body.cursor
    }
    expect((await c.row()).is_active).toBe(true)
  })

  it('118 running compaction on an engine without compaction options → error', async () => {
    const plain = await createTestApp()
    try {
      await expect(plain.engine.runCompaction()).rejects.toBeInstanceOf(ConfigurationError)
    } finally {
      await plain.close()
    }
  })
})

describe('Decision 11 stale-client hook', () => {
  let app: TestApp
  beforeAll(async () => {
    app = await createTestApp({
      seed: true,
      engine: { compaction: {}, hooks: { onStaleClient: ({ clientId }) => !clientId.startsWith('reject-') } },
    })
  })
  afterAll(async () => {
    await app.close()
  })

  it('a rejected stale client gets 403 on pull and snapshot (never 500); an accepted one is served', async () => {
    const bad = await client(app)
    const reg = await app.registerClient(randomUUID(), `reject-${randomUUID()}`)
    await app.db.pool.query(`UPDATE sync_clients SET is_active = false, last_pull_seq = 0 WHERE client_id = $1`, [
      reg.clientId,
    ])
    const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
    const user = (await app.db.pool.query(`SELECT user_id FROM sync_clients WHERE client_id = $1`, [reg.clientId]))
      .rows[0].user_id
    const p = await app.call('POST', '/sync/pull', { user, body: { ...pair, checkpoint: 0 } })
    expect(p.status).toBe(403)
    const s = await app.call('POST', '/sync/snapshot', { user, body: pair })
    expect(s.status).toBe(403)
    await bad.set(`is_active = false, last_pull_seq = 0`)
    expect((await bad.pull()).status).toBe(200)
  })
})
