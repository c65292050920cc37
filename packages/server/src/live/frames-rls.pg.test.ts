import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { createAppRolePool } from '@synchro/test-harness/roles'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine } from '../engine/engine.js'
import type { LiveFrames } from '../engine/types.js'

// `live.frames`: an app whose own RLS policy makes a table without registry predicates (products) user-dependent.
// The engines run as a non-superuser role, so the policy binds the frame render as it binds the app.
let app: TestApp
let rolePool: pg.Pool
const [alice, bob] = [randomUUID(), randomUUID()]
let prev = 0
let seq = 0

beforeAll(async () => {
  app = await createTestApp({
    seed: true,
    extraSql: `ALTER TABLE products ADD COLUMN visible_to uuid;
          ALTER TABLE products ENABLE ROW LEVEL SECURITY;
          ALTER TABLE products FORCE ROW LEVEL SECURITY;
          CREATE POLICY app_products ON products FOR SELECT
            USING (visible_to IS NULL OR visible_to::text = current_setting('app.user_id', true));`,
  })
  rolePool = await createAppRolePool(app.db)
  prev = Number((await app.db.pool.query('SELECT coalesce(max(seq), 0) AS s FROM sync_changelog')).rows[0].s)
  // A product only alice may see, announced in the shared bucket as the capture would.
  const { rows } = await app.db.pool.query(
    `INSERT INTO products (name, visible_to) VALUES ('alice only', $1) RETURNING id::text`,
    [alice],
  )
  const ins = await app.db.pool.query(
    `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ('global', 'products', $1, 1)
     RETURNING seq`,
    [rows[0].id],
  )
  seq = Number(ins.rows[0].seq)
}, 120_000)
afterAll(async () => {
  await rolePool?.end()
  await app?.close()
})

async function frames(mode: LiveFrames): Promise<{ alice?: string; bob?: string }> {
  const engine = await createEngine({
    pool: rolePool,
    registry: app.engine.ctx.registry,
    migrate: false,
    live: { frames: mode },
  })
  try {
    // A render needs the schema contract loaded (a stream's client has registered or pulled before its first frame).
    const reg = { platform: 't', app_version: '1', schema_version: 0, schema_hash: '' }
    await engine.register(alice, { client_id: randomUUID(), ...reg })
    const text = (b: Uint8Array | undefined) => (b ? new TextDecoder().decode(b) : undefined)
    const a = text(await engine.liveFrame(alice, ['global'], prev, seq))
    const b = text(await engine.liveFrame(bob, ['global'], prev, seq))
    return { alice: a, bob: b }
  } finally {
    await engine.close()
  }
}

describe('live.frames with an application RLS policy', () => {
  it('shared (default): one render for every stream — the documented reason for per-user', async () => {
    const f = await frames('shared')
    expect(f.alice).toContain('alice only')
    expect(f.bob).toBe(f.alice)
  })

  it('per-user: each user gets their own render; a row the policy hides is never framed (a poke instead)', async () => {
    const f = await frames('per-user')
    expect(f.alice).toContain('alice only')
    expect(f.bob).toBeUndefined()
  })

  it('off: pokes only', async () => {
    expect(await frames('off')).toEqual({ alice: undefined, bob: undefined })
  })
})
