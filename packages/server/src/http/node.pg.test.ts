import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toNodeListener } from './node.js'

let app: TestApp
let server: http.Server
let base: string
beforeAll(async () => {
  app = await createTestApp({ handler: { bodyLimit: 64 * 1024 } })
  server = http.createServer(toNodeListener(app.handler))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((r) => server.close(r))
  await app.close()
})

describe('over a real socket (node:http adapter)', () => {
  it('register, tables and schema answer with JSON', async () => {
    const reg = await fetch(`${base}/sync/register`, {
      method: 'POST',
      headers: { 'x-user-id': 'sock-user', 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: 'c',
        platform: 'node',
        app_version: '1.0.0',
        schema_version: 0,
        schema_hash: '',
      }),
    })
    expect(reg.status).toBe(200)
    expect(reg.headers.get('content-type')).toBe('application/json')
    const schema = await fetch(`${base}/sync/schema`, { headers: { 'x-user-id': 'sock-user' } })
    expect(((await schema.json()) as { tables: unknown[] }).tables).toHaveLength(4)
  })

  it('an oversized body gets 413, not a dropped connection', async () => {
    const res = await fetch(`${base}/sync/push`, {
      method: 'POST',
      headers: { 'x-user-id': 'u', 'content-type': 'application/json' },
      body: JSON.stringify({ schema_version: 1, schema_hash: 'h', changes: [{ data: 'x'.repeat(200_000) }] }),
    })
    expect(res.status).toBe(413)
    expect(await res.json()).toEqual({ error: 'request body too large' })
  })

  it('property: arbitrary bodies to register never produce a 5xx or a dropped connection', async () => {
    const before = await app.db.pool.query('SELECT count(*)::int AS n FROM sync_clients')
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc
            .record({
              client_id: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
              schema_version: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
              schema_hash: fc.oneof(fc.string(), fc.constant(7)),
              platform: fc.anything(),
            })
            .map((o) => JSON.stringify(o)),
        ),
        async (body) => {
          const res = await fetch(`${base}/sync/register`, {
            method: 'POST',
            headers: { 'x-user-id': 'fuzz', 'content-type': 'application/json' },
            body,
          })
          expect(res.status).toBeLessThan(500)
          expect(res.headers.get('content-type')).toBe('application/json')
          await res.json()
        },
      ),
      { numRuns: 150 },
    )
    const after = await app.db.pool.query(`SELECT count(*)::int AS n FROM sync_clients WHERE user_id <> 'fuzz'`)
    expect(after.rows[0].n).toBe(before.rows[0].n)
  })
})
