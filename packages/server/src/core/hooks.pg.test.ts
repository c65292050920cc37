import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toNodeListener } from '../http/node.js'
import type { Logger } from './types.js'

/** Informational hooks that fail: thrown synchronously, or as a rejected promise (an async hook). */
let mode: 'throw' | 'reject' = 'throw'
const fail = (name: string): undefined => {
  if (mode === 'throw') throw new Error(`${name} broke`)
  // An async hook: the engine's types say void, a user's code may still hand back a promise that rejects.
  return Promise.reject(new Error(`${name} broke`)) as unknown as undefined
}
const warnings: { hook?: string; msg?: string }[] = []
const logger: Logger = {
  debug() {},
  info() {},
  warn: (obj, msg) => warnings.push({ ...(obj as { hook?: string }), msg }),
  error() {},
}

let app: TestApp
let server: http.Server
let base: string
beforeAll(async () => {
  app = await createTestApp({
    engine: {
      logger,
      minClientVersion: '1.0.0',
      compaction: { staleThresholdMs: 24 * 60 * 60 * 1000 },
      hooks: {
        onSchemaIncompatible: () => fail('onSchemaIncompatible'),
        onCompaction: () => fail('onCompaction'),
        onPushComplete: () => fail('onPushComplete'),
        onConflict: () => fail('onConflict'),
        onPullComplete: () => fail('onPullComplete'),
        onSnapshotRequired: () => fail('onSnapshotRequired'),
        onSnapshotPage: () => fail('onSnapshotPage'),
      },
    },
  })
  server = http.createServer(toNodeListener(app.handler))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((r) => server.close(r))
  await app.close()
})

async function post(user: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'x-user-id': user, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.status, body: await res.json() }
}

/** Lets rejected hook promises settle (their rejection is logged on a later tick). */
const settle = () => new Promise((r) => setTimeout(r, 20))

const failedHooks = () => warnings.filter((w) => w.msg === 'hook failed').map((w) => w.hook)

describe.each(['throw', 'reject'] as const)('informational hooks that %s never change a response', (m) => {
  it('push: a failing onPushComplete / onConflict leaves a 200 with its data committed', async () => {
    mode = m
    warnings.length = 0
    const user = randomUUID()
    const { clientId, version, hash } = await app.registerClient(user)
    const id = randomUUID()
    const push = (operation: string, data: object) =>
      post(user, '/sync/push', {
        client_id: clientId,
        schema_version: version,
        schema_hash: hash,
        changes: [{ id, table_name: 'orders', operation, data, client_updated_at: new Date().toISOString() }],
      })
    const created = await push('create', { ship_address: 'first' })
    expect(created.status).toBe(200)
    expect(created.body.accepted.map((r: { status: string }) => r.status)).toEqual(['applied'])
    // An update of an existing row reaches conflict resolution (onConflict).
    const updated = await push('update', { ship_address: 'second' })
    expect(updated.status).toBe(200)
    expect(updated.body.accepted).toHaveLength(1)
    const { rows } = await app.db.pool.query('SELECT ship_address FROM orders WHERE id = $1', [id])
    expect(rows).toEqual([{ ship_address: 'second' }])
    await settle()
    expect(failedHooks()).toEqual(['onPushComplete', 'onConflict', 'onPushComplete'])
  })

  it('pull and snapshot: failing onSnapshotRequired / onSnapshotPage / onPullComplete leave 200s', async () => {
    mode = m
    warnings.length = 0
    const user = randomUUID()
    const { clientId, version, hash } = await app.registerClient(user)
    const pair = { client_id: clientId, schema_version: version, schema_hash: hash }
    const first = await post(user, '/sync/pull', { ...pair, checkpoint: 0 })
    expect(first.status).toBe(200)
    expect(first.body.snapshot_reason).toBe('initial_sync_required')
    const snap = await post(user, '/sync/snapshot', pair)
    expect(snap.status).toBe(200)
    expect(snap.body.has_more).toBe(false)
    const pulled = await post(user, '/sync/pull', { ...pair, checkpoint: snap.body.checkpoint })
    expect(pulled.status).toBe(200)
    expect(pulled.body.snapshot_required).toBeUndefined()
    // The final snapshot page and the served pull both committed their checkpoint bookkeeping.
    const { rows } = await app.db.pool.query(
      'SELECT last_pull_seq::text AS seq, last_pull_at IS NOT NULL AS pulled FROM sync_clients WHERE user_id = $1',
      [user],
    )
    expect(rows).toEqual([{ seq: String(pulled.body.checkpoint), pulled: true }])
    await settle()
    expect(failedHooks()).toEqual(['onSnapshotRequired', 'onSnapshotPage', 'onPullComplete'])
  })

  it('register below the minimum version: a failing onSchemaIncompatible leaves the 426', async () => {
    mode = m
    warnings.length = 0
    const old = await post(randomUUID(), '/sync/register', {
      client_id: 'old',
      platform: 'test',
      app_version: '0.9.0',
      schema_version: 0,
      schema_hash: '',
    })
    expect(old).toEqual({ status: 426, body: { error: 'client upgrade required' } })
    await settle()
    expect(failedHooks()).toEqual(['onSchemaIncompatible'])
  })

  it('compaction: a failing onCompaction leaves the run its result', async () => {
    mode = m
    warnings.length = 0
    const result = await app.engine.runCompaction()
    expect(result).toMatchObject({ deactivatedClients: 0 })
    await settle()
    expect(failedHooks()).toEqual(['onCompaction'])
  })
})
