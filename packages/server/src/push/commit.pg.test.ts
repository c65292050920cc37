import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../engine/engine.js'
import { StaleClientRejectedError } from '../errors.js'
import { RequestDeadline } from '../limits/deadline.js'

/**
 * The last write of a push commits in its own round trip (commit.ts); when it cannot answer every record, the
 * transaction rolls back and the push runs again the usual way. After a first push, the opening of the next ones rides
 * in the round trip of their stamp reads (gate.ts); when that gate is closed the `openRequest` path answers. These
 * tests look at the statements sent and at the answers of every way.
 */
describe('push: the last write commits with its statement', () => {
  let app: TestApp
  let pool: pg.Pool
  let engine: Engine
  const sent: string[] = []
  const spied = new WeakSet<pg.PoolClient>()
  let connections = 0
  const user = randomUUID()
  const stale: string[] = []
  let pair: { client_id: string; schema_version: number; schema_hash: string }

  beforeAll(async () => {
    app = await createTestApp()
    pool = new pg.Pool({ connectionString: app.db.url, max: 2 })
    pool.on('connect', () => connections++)
    // Every statement text the engine's connections send, in order.
    pool.on('acquire', (c) => {
      if (spied.has(c)) return
      spied.add(c)
      const query = c.query.bind(c) as (...args: unknown[]) => unknown
      ;(c as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const q = args[0] as string | { text?: string }
        sent.push(typeof q === 'string' ? q : (q.text ?? ''))
        return query(...args)
      }
    })
    const hooks = {
      onStaleClient: ({ clientId }: { clientId: string }) => {
        stale.push(clientId)
        return false
      },
    }
    engine = await createEngine({ pool, registry: app.engine.ctx.registry, migrate: false, hooks })
    const reg = await app.registerClient(user)
    pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
  })
  afterAll(async () => {
    await engine.close()
    await pool.end()
    await app.close()
  })
  beforeEach(() => {
    sent.length = 0
  })

  const create = (id: string, ship_address: string) => ({
    id,
    table_name: 'orders',
    operation: 'create' as const,
    data: { ship_address },
    client_updated_at: new Date().toISOString(),
    base_updated_at: undefined,
  })
  const push = (changes: ReturnType<typeof create>[]) => engine.push(user, { ...pair, changes })
  const count = async (ids: string[]) =>
    (await app.db.pool.query('SELECT count(*)::int AS n FROM orders WHERE id = ANY($1)', [ids])).rows[0].n

  it('a push of creates: opening, write and COMMIT in one round trip', async () => {
    await push([create(randomUUID(), 'warm')]) // prepares the statement on the connection
    sent.length = 0
    const ids = [randomUUID(), randomUUID(), randomUUID()]
    const res = await push(ids.map((id) => create(id, 'a')))
    expect(res.accepted.map((r) => r.id)).toEqual(ids)
    // Defaults the server set come back as server_version (the stored row).
    expect(res.accepted[0]?.server_version?.data.created_at).toEqual(expect.any(String))
    expect(sent).toHaveLength(1)
    expect(sent[0]).toMatch(
      /^BEGIN;\nSELECT set_config\('app\.user_id'[\s\S]*;\nEXECUTE synchro_push_gate_\w+\([\s\S]*;\nEXECUTE synchro_push_\w+\([\s\S]*;\nCOMMIT$/,
    )
    expect(await count(ids)).toBe(3)
    const touched = await app.db.pool.query('SELECT last_push_at FROM sync_clients WHERE client_id = $1', [
      pair.client_id,
    ])
    expect(touched.rows[0].last_push_at).not.toBeNull()
  })

  it('a create over an existing id: rolled back whole, then answered the usual way; nothing twice', async () => {
    const old = randomUUID()
    expect((await push([create(old, 'first')])).accepted).toHaveLength(1)
    sent.length = 0
    const fresh = [randomUUID(), randomUUID()]
    const res = await push([create(fresh[0] as string, 'b'), create(old, 'again'), create(fresh[1] as string, 'c')])
    expect(res.accepted.map((r) => r.id)).toEqual(fresh)
    expect(res.rejected).toEqual([
      expect.objectContaining({ id: old, status: 'conflict', reason_code: 'record_exists' }),
    ])
    expect(res.rejected[0]?.server_version?.data.ship_address).toBe('first')
    // Two transactions: the committing write failed (ROLLBACK), the second run committed on its own.
    expect(sent.filter((s) => /^BEGIN;\s/.test(s))).toHaveLength(2)
    expect(sent).toContain('ROLLBACK')
    expect(sent[sent.length - 1]).toBe('COMMIT')
    expect(await count([...fresh, old])).toBe(3)
    const stored = await app.db.pool.query('SELECT ship_address FROM orders WHERE id = $1', [old])
    expect(stored.rows[0].ship_address).toBe('first')
  })

  it('a record the database rejects: the others are applied, the bad one answered alone', async () => {
    const ids = [randomUUID(), randomUUID()]
    // One statement for all three (same columns): it fails, and the second run replays it record by record.
    const withStatus = (id: string, status: string) => ({ ...create(id, 'x'), data: { ship_address: 'x', status } })
    const bad = withStatus(randomUUID(), 'no-such-status')
    const changes = [withStatus(ids[0] as string, 'pending'), bad, withStatus(ids[1] as string, 'shipped')]
    const res = await engine.push(user, { ...pair, changes })
    expect(res.accepted.map((r) => r.id)).toEqual(ids)
    expect(res.rejected).toEqual([expect.objectContaining({ id: bad.id, reason_code: 'invalid_data' })])
    expect(await count([...ids, bad.id])).toBe(2)
  })

  it('a first round trip that fails before the last write (a bad record in an earlier batch): answered the usual way', async () => {
    await push([create(randomUUID(), 'warm')])
    const good = randomUUID()
    const bad = { ...create(randomUUID(), 'x'), data: { ship_address: 'x', status: 'no-such-status' } }
    const last = randomUUID()
    sent.length = 0
    // Two shapes, two statements: the first (with the opening) fails; the request starts over the usual way.
    const res = await push([bad, create(good, 'g'), create(last, 'l')] as ReturnType<typeof create>[])
    expect(res.accepted.map((r) => r.id)).toEqual([good, last])
    expect(res.rejected).toEqual([expect.objectContaining({ id: bad.id, reason_code: 'invalid_data' })])
    expect(sent[0]).toMatch(/^BEGIN;\n[\s\S]*EXECUTE synchro_push_gate_[\s\S]*SAVEPOINT synchro_push;/)
    expect(sent).toContain('ROLLBACK')
    expect(await count([good, bad.id, last])).toBe(2)
  })

  it('quotes, backslashes and $n in the data reach the row exactly (inlined literals)', async () => {
    const texts = ["it's", 'C:\\temp\\new', 'costs $1 or $2', "mixed \\' $1 ''", 'ünïcode ✓ \u0001']
    const ids = texts.map(() => randomUUID())
    const res = await push(ids.map((id, i) => create(id, texts[i] as string)))
    expect(res.accepted.map((r) => r.id)).toEqual(ids)
    const { rows } = await app.db.pool.query('SELECT id::text, ship_address FROM orders WHERE id = ANY($1)', [ids])
    const stored = new Map(rows.map((r) => [r.id, r.ship_address]))
    expect(ids.map((id) => stored.get(id))).toEqual(texts)
  })

  async function client() {
    const user = randomUUID()
    const reg = await app.registerClient(user)
    const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
    const change = (operation: 'create' | 'update', id: string, ship_address: string) => ({
      id,
      table_name: 'orders',
      operation,
      data: { ship_address },
      client_updated_at: new Date(Date.now() + 60_000).toISOString(),
      base_updated_at: undefined,
    })
    const push = (changes: ReturnType<typeof change>[]) => engine.push(user, { ...pair, changes })
    return { user, pair, change, push }
  }
  const stored = async (id: string) =>
    (await app.db.pool.query('SELECT ship_address FROM orders WHERE id = $1', [id])).rows[0]?.ship_address

  it('a push of updates: opening and stamp reads in one round trip, then the write and COMMIT', async () => {
    const c = await client()
    const ids = [randomUUID(), randomUUID()]
    expect((await c.push(ids.map((id) => c.change('create', id, 'a')))).accepted).toHaveLength(2)
    // Prepares the update statement on the connection (its own round trip the first time).
    expect((await c.push(ids.map((id) => c.change('update', id, 'a2')))).accepted).toHaveLength(2)
    const before = await app.db.pool.query('SELECT last_push_at FROM sync_clients WHERE client_id = $1', [
      c.pair.client_id,
    ])
    sent.length = 0
    const res = await c.push(ids.map((id) => c.change('update', id, 'b')))
    expect(res.accepted.map((r) => r.id)).toEqual(ids)
    expect(sent).toHaveLength(2)
    expect(sent[0]).toMatch(/^BEGIN;\nSELECT set_config\('app\.user_id'[\s\S]*EXECUTE synchro_push_gate_/)
    expect(sent[0]).toContain(ids[0])
    expect(sent[1]).toMatch(/;\nCOMMIT$/)
    expect(await stored(ids[1] as string)).toBe('b')
    const after = await app.db.pool.query('SELECT last_push_at FROM sync_clients WHERE client_id = $1', [
      c.pair.client_id,
    ])
    expect(after.rows[0].last_push_at.getTime()).toBeGreaterThan(before.rows[0].last_push_at.getTime())
  })

  it('a catalog change closes the gate: rolled back, then the opened path (new contract) answers', async () => {
    const c = await client()
    await c.push([c.change('create', randomUUID(), 'warm')])
    // Changes the catalog fingerprint, not the schema contract's hash.
    await app.db.pool.query(`CREATE INDEX gate_test_${Date.now()} ON orders (ship_address)`)
    sent.length = 0
    const id = randomUUID()
    const res = await c.push([c.change('create', id, 'after ddl')])
    expect(res.accepted.map((r) => r.id)).toEqual([id])
    expect(sent[0]).toContain('EXECUTE synchro_push_gate_')
    expect(sent[1]).toBe('ROLLBACK')
    expect(sent.slice(2).some((s) => /^BEGIN; WITH c AS/.test(s))).toBe(true)
    expect(await stored(id)).toBe('after ddl')
  })

  it('a deactivated client closes the gate: the stale-client hook answers, nothing is written', async () => {
    const c = await client()
    await c.push([c.change('create', randomUUID(), 'warm')])
    await app.db.pool.query('UPDATE sync_clients SET is_active = false, last_push_at = NULL WHERE client_id = $1', [
      c.pair.client_id,
    ])
    sent.length = 0
    const id = randomUUID()
    await expect(c.push([c.change('create', id, 'x')])).rejects.toBeInstanceOf(StaleClientRejectedError)
    expect(sent[0]).toContain('EXECUTE synchro_push_gate_')
    expect(stale).toContain(c.pair.client_id)
    expect(await stored(id)).toBeUndefined()
    const row = await app.db.pool.query('SELECT last_push_at FROM sync_clients WHERE client_id = $1', [
      c.pair.client_id,
    ])
    expect(row.rows[0].last_push_at).toBeNull()
  })

  it('a closed gate keeps its connection: a deactivated client pushing again and again opens none', async () => {
    const c = await client()
    await c.push([c.change('create', randomUUID(), 'warm')])
    await app.db.pool.query('UPDATE sync_clients SET is_active = false WHERE client_id = $1', [c.pair.client_id])
    const hook = stale.length
    const before = connections
    // The onStaleClient hook here rejects: each push meets the closed gate, then the usual path answers 403.
    for (let i = 0; i < 3; i++) {
      await expect(c.push([c.change('create', randomUUID(), 'x')])).rejects.toBeInstanceOf(StaleClientRejectedError)
    }
    expect(stale.length).toBe(hook + 3)
    expect(connections).toBe(before)
  })

  describe('under a request deadline (a served push)', () => {
    const bounded = (c: Awaited<ReturnType<typeof client>>, changes: ReturnType<typeof c.change>[]) =>
      engine.push(c.user, { ...c.pair, changes }, { deadline: new RequestDeadline(5_000) })

    it('a push of creates sends its opening alone, at once, then the write with COMMIT', async () => {
      const c = await client()
      await bounded(c, [c.change('create', randomUUID(), 'warm')])
      sent.length = 0
      const ids = [randomUUID(), randomUUID()]
      const res = await bounded(
        c,
        ids.map((id) => c.change('create', id, 'd')),
      )
      expect(res.accepted.map((r) => r.id)).toEqual(ids)
      expect(sent).toHaveLength(2)
      expect(sent[0]).toMatch(
        /^BEGIN;\nSELECT set_config\('app\.user_id'[\s\S]*EXECUTE synchro_push_gate_\w+\([^;]*\);\nSELECT 1$/,
      )
      expect(sent[1]).toMatch(/^EXECUTE synchro_push_\w+\([\s\S]*;\nCOMMIT$/)
      expect(await stored(ids[1] as string)).toBe('d')
    })

    it('a closed gate met by an opening sent early: the usual path answers, nothing is written', async () => {
      const c = await client()
      await bounded(c, [c.change('create', randomUUID(), 'warm')])
      await app.db.pool.query('UPDATE sync_clients SET is_active = false WHERE client_id = $1', [c.pair.client_id])
      const hook = stale.length
      sent.length = 0
      const id = randomUUID()
      await expect(bounded(c, [c.change('create', id, 'x')])).rejects.toBeInstanceOf(StaleClientRejectedError)
      expect(sent[0]).toMatch(/EXECUTE synchro_push_gate_\w+\([^;]*\);\nSELECT 1$/)
      expect(sent).toContain('ROLLBACK')
      expect(stale.length).toBe(hook + 1)
      expect(await stored(id)).toBeUndefined()
      // The connection is sound afterwards: the client, active again, pushes through the gate.
      await app.db.pool.query('UPDATE sync_clients SET is_active = true WHERE client_id = $1', [c.pair.client_id])
      const next = randomUUID()
      expect((await bounded(c, [c.change('create', next, 'y')])).accepted.map((r) => r.id)).toEqual([next])
      expect(await stored(next)).toBe('y')
    })
  })
})
