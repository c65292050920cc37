import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Review (session 7): a page starts background reads (prefetch) *before* its entry is offered to the cache (put).
// When the entry with room for two reads does not fit, put drops it — and both reads run for nothing, their rows
// unaccounted, every page again (the page's own extra rows are dropped too), although room for one read was there.
let app: TestApp
beforeAll(async () => {
  app = await createTestApp({ seed: true, engine: { snapshotReadAhead: { rows: 4 } } })
})
afterAll(async () => {
  await app.close()
})

const cache = () => app.engine.ctx.snapshotCache
const settle = () => new Promise((r) => setTimeout(r, 100))

describe('snapshot read-ahead budget (review)', () => {
  it('with room for one background read but not two, the entry and one read are kept', async () => {
    const client = async () => {
      const user = randomUUID()
      const reg = await app.registerClient(user)
      const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
      await app.db.pool.query(`INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 30)`, [user])
      return {
        user,
        reg,
        snap: (body: Record<string, unknown>) =>
          app.call('POST', '/sync/snapshot', { user, body: { ...pair, ...body } }),
      }
    }
    // Measure what one entry costs: 4 rows left + 2 reads of 4 rows reserved = 12 rows.
    const a = await client()
    const p1 = await a.snap({ limit: 2 })
    await settle()
    expect(cache().size).toBe(1)
    const rowBytes = cache().bytes / 12
    cache().take(a.user, a.reg.clientId, p1.body.cursor)
    expect(cache().bytes).toBe(0)
    const saved = cache().options.maxBytes
    try {
      // Room for 10 rows: an entry with one read (4 + 4 rows) fits; with two (4 + 8 rows) it does not.
      cache().options.maxBytes = Math.floor(rowBytes * 10)
      const b = await client()
      const first = await b.snap({ limit: 2 })
      expect(first.status).toBe(200)
      await settle()
      expect(cache().size).toBe(1) // HEAD: 0 — the two-read entry was refused, its reads ran for nothing
      expect(cache().bytes).toBeLessThanOrEqual(cache().options.maxBytes)
    } finally {
      cache().options.maxBytes = saved
    }
  })
})
