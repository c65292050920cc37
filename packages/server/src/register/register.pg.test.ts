import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

let app: TestApp
let V: number
let H: string
beforeAll(async () => {
  app = await createTestApp({ engine: { minClientVersion: '1.0.0' } })
  const s = await app.call('GET', '/sync/schema', { user: 'u' })
  V = s.body.schema_version
  H = s.body.schema_hash
})
afterAll(async () => {
  await app.close()
})

const body = (o: Record<string, unknown> = {}) => ({
  client_id: 'c1',
  platform: 'ios',
  app_version: '1.0.0',
  schema_version: 0,
  schema_hash: '',
  ...o,
})

describe('§3 B register', () => {
  it('15 fresh register with the bootstrap pair', async () => {
    const r = await app.call('POST', '/sync/register', { user: 'u15', body: body() })
    expect(r.status).toBe(200)
    expect(r.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(r.body.checkpoint).toBe(0)
    expect(r.body).not.toHaveProperty('last_sync_at')
    expect(r.body.schema_version).toBeGreaterThanOrEqual(1)
    expect(r.body.schema_hash).toMatch(/^[0-9a-f]{64}$/)
    expect(r.body.server_time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/)
    const { rows } = await app.db.pool.query(
      `SELECT bucket_subs, is_active, last_sync_at, last_pull_at, last_push_at, last_pull_seq FROM sync_clients WHERE user_id = 'u15'`,
    )
    expect(rows).toEqual([
      {
        bucket_subs: ['user:u15', 'global'],
        is_active: true,
        last_sync_at: null,
        last_pull_at: null,
        last_push_at: null,
        last_pull_seq: null,
      },
    ])
  })

  it('16 register with the current pair → 200', async () => {
    const r = await app.call('POST', '/sync/register', {
      user: 'u16',
      body: body({ schema_version: V, schema_hash: H }),
    })
    expect(r.status).toBe(200)
    expect(r.body.schema_version).toBe(V)
    expect(r.body.schema_hash).toBe(H)
  })

  it('17 wrong pair → 409 schema_mismatch with the current pair', async () => {
    for (const [v, h] of [
      [V + 1, H],
      [V, 'f'.repeat(64)],
      [0, 'abc'],
      [7, ''],
    ] as const) {
      const r = await app.call('POST', '/sync/register', {
        user: 'u17',
        body: body({ schema_version: v, schema_hash: h }),
      })
      expect(r.status).toBe(409)
      expect(r.body).toEqual({
        code: 'schema_mismatch',
        message: 'client schema does not match server schema',
        server_schema_version: V,
        server_schema_hash: H,
      })
    }
  })

  it('18 re-register keeps the id, updates name/platform/version, reactivates, reports checkpoint and last_sync_at', async () => {
    const first = await app.call('POST', '/sync/register', { user: 'u18', body: body({ client_name: 'a' }) })
    await app.db.pool.query(
      `UPDATE sync_clients SET is_active = false, last_pull_seq = 42, last_sync_at = '2026-01-02T03:04:05.123456Z',
              bucket_subs = '{user:u18,global,team:1}' WHERE user_id = 'u18'`,
    )
    const again = await app.call('POST', '/sync/register', {
      user: 'u18',
      body: body({ client_name: 'b', platform: 'android', app_version: '2.0.0' }),
    })
    expect(again.status).toBe(200)
    expect(again.body.id).toBe(first.body.id)
    expect(again.body.checkpoint).toBe(42)
    expect(again.body.last_sync_at).toBe('2026-01-02T03:04:05.123456Z')
    const { rows } = await app.db.pool.query(
      `SELECT client_name, platform, app_version, is_active, bucket_subs FROM sync_clients WHERE user_id = 'u18'`,
    )
    expect(rows).toEqual([
      {
        client_name: 'b',
        platform: 'android',
        app_version: '2.0.0',
        is_active: true,
        bucket_subs: ['user:u18', 'global', 'team:1'],
      },
    ])
  })

  it('19 the same client_id under two users → two independent rows', async () => {
    const a = await app.call('POST', '/sync/register', { user: 'u19a', body: body({ client_id: 'shared' }) })
    const b = await app.call('POST', '/sync/register', { user: 'u19b', body: body({ client_id: 'shared' }) })
    expect(a.body.id).not.toBe(b.body.id)
    const { rows } = await app.db.pool.query(`SELECT count(*)::int AS n FROM sync_clients WHERE client_id = 'shared'`)
    expect(rows[0].n).toBe(2)
  })

  it('20 engine version gate: body app_version 0.9.0 → 426; empty → not checked', async () => {
    const old = await app.call('POST', '/sync/register', { user: 'u20', body: body({ app_version: '0.9.0' }) })
    expect(old.status).toBe(426)
    expect(old.body).toEqual({ error: 'client upgrade required' })
    const empty = await app.call('POST', '/sync/register', { user: 'u20', body: body({ app_version: '' }) })
    expect(empty.status).toBe(200)
  })

  it('21 (Decision 11) unparseable body app_version with a minimum → 426', async () => {
    const r = await app.call('POST', '/sync/register', { user: 'u21', body: body({ app_version: 'bad' }) })
    expect(r.status).toBe(426)
  })

  it('22 schema check precedes the version check', async () => {
    const r = await app.call('POST', '/sync/register', {
      user: 'u22',
      body: body({ app_version: '0.1.0', schema_version: V + 5, schema_hash: 'x' }),
    })
    expect(r.status).toBe(409)
  })

  it('client_name null = absent; missing required keys → 400 in order', async () => {
    const ok = await app.call('POST', '/sync/register', { user: 'u23', body: body({ client_name: null }) })
    expect(ok.status).toBe(200)
    const noVersion = await app.call('POST', '/sync/register', { user: 'u23', body: { schema_hash: '' } })
    expect(noVersion.body).toEqual({ error: 'schema_version is required' })
    const noHash = await app.call('POST', '/sync/register', { user: 'u23', body: { schema_version: 0 } })
    expect(noHash.body).toEqual({ error: 'schema_hash is required' })
    const nulls = await app.call('POST', '/sync/register', {
      user: 'u23',
      body: { schema_version: null, schema_hash: null },
    })
    expect(nulls.status).toBe(200)
    const wrongType = await app.call('POST', '/sync/register', { user: 'u23', body: { ...body(), client_id: 7 } })
    expect(wrongType.body).toEqual({ error: 'invalid request body' })
  })
})
