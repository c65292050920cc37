import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEngine, type Engine } from '../engine/engine.js'

// Behind a transaction-mode pooler (pgbouncer) the PREPAREd gate statement (gate.ts) stays on the server connection
// that ran it. Simulated on one real connection by deallocating behind the engine's back. Its own file: the engine
// stops preparing for the rest of the process.
let app: TestApp
let pool: pg.Pool
let engine: Engine
const sent: string[] = []
beforeAll(async () => {
  app = await createTestApp()
  pool = new pg.Pool({ connectionString: app.db.url, max: 1 })
  pool.on('connect', (c) => {
    const query = c.query.bind(c) as (...args: unknown[]) => unknown
    ;(c as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const q = args[0] as string | { text?: string }
      sent.push(typeof q === 'string' ? q : (q.text ?? ''))
      return query(...args)
    }
  })
  engine = await createEngine({ pool, registry: app.engine.ctx.registry, migrate: false })
})
afterAll(async () => {
  await engine?.close()
  await pool?.end()
  await app?.close()
})

describe('the push gate behind a pooler', () => {
  it('a gate statement gone missing costs one attempt: the push is answered, and no gate is tried again', async () => {
    const user = randomUUID()
    const reg = await app.registerClient(user)
    const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
    const push = (ship_address: string) =>
      engine.push(user, {
        ...pair,
        changes: [
          {
            id: randomUUID(),
            table_name: 'orders',
            operation: 'create',
            data: { ship_address },
            client_updated_at: new Date().toISOString(),
            base_updated_at: undefined,
          },
        ],
      })
    await push('opened')
    await push('gated') // PREPAREs the gate on the (only) connection
    expect(sent.filter((s) => s.includes('EXECUTE synchro_push_gate_'))).toHaveLength(1)
    await pool.query('DEALLOCATE ALL') // what another server connection behind a pooler looks like
    expect((await push('after')).accepted).toHaveLength(1)
    sent.length = 0
    expect((await push('later')).accepted).toHaveLength(1)
    expect(sent.some((s) => s.includes('synchro_push_gate_'))).toBe(false)
    const { rows } = await app.db.pool.query('SELECT ship_address FROM orders WHERE user_id = $1 ORDER BY 1', [user])
    expect(rows.map((r) => r.ship_address)).toEqual(['after', 'gated', 'later', 'opened'])
  })
})
