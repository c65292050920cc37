import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { FakeServer } from '../../test/fake-server.js'
import { cleanupTempDirs, makeClient, startSynced, uuid } from '../../test/helpers.js'

afterAll(cleanupTempDirs)

type Op =
  | { kind: 'localInsert' }
  | { kind: 'localUpdate'; row: number; name: string }
  | { kind: 'localDelete'; row: number }
  | { kind: 'serverUpsert'; row: number; name: string }
  | { kind: 'serverDelete'; row: number }
  | { kind: 'fail'; how: 'drop' | 'lose' | 503 }
  | { kind: 'sync' }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.constant<Op>({ kind: 'localInsert' }),
  fc.record({ kind: fc.constant('localUpdate' as const), row: fc.nat(7), name: fc.string({ maxLength: 4 }) }),
  fc.record({ kind: fc.constant('localDelete' as const), row: fc.nat(7) }),
  fc.record({ kind: fc.constant('serverUpsert' as const), row: fc.nat(7), name: fc.string({ maxLength: 4 }) }),
  fc.record({ kind: fc.constant('serverDelete' as const), row: fc.nat(7) }),
  // 'lose': the server handles the request, then the answer is lost.
  fc.record({ kind: fc.constant('fail' as const), how: fc.constantFrom<'drop' | 'lose' | 503>('drop', 'lose', 503) }),
  fc.constant<Op>({ kind: 'sync' }),
)

describe('convergence under failures (property)', () => {
  it('any interleaving of local writes, server writes, failed and successful syncs converges once the network heals', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), fc.boolean(), async (ops, serverAhead) => {
        const server = await new FakeServer().start()
        // Server clock ahead of the client's: every last-write-wins decision goes to the server (conflicts).
        if (serverAhead) server.clockUs = (Date.now() + 3_600_000) * 1000
        const c = makeClient(server.url, { maxRetryAttempts: 0, pushDebounce: 3600 })
        try {
          await startSynced(c)
          let next = 0
          const ids: string[] = []
          const localIds = async () => (await c.query<{ id: string }>('SELECT id FROM lists')).map((r) => r.id)
          for (const op of ops) {
            switch (op.kind) {
              case 'localInsert': {
                const id = uuid(1000 + next++)
                ids.push(id)
                await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'new')`, [id])
                break
              }
              case 'localUpdate':
              case 'localDelete': {
                const all = await localIds()
                const id = all[op.row % Math.max(1, all.length)]
                if (!id) break
                if (op.kind === 'localUpdate') await c.execute('UPDATE lists SET name = ? WHERE id = ?', [op.name, id])
                else await c.execute('DELETE FROM lists WHERE id = ?', [id])
                break
              }
              case 'serverUpsert': {
                const id = uuid(op.row)
                const existing = server.rows.get('lists')!.get(id)
                if (existing?.deleted_at) break
                server.serverUpsert('lists', id, { name: op.name })
                break
              }
              case 'serverDelete': {
                const r = server.rows.get('lists')!.get(uuid(op.row))
                if (r && !r.deleted_at) server.serverDelete('lists', uuid(op.row))
                break
              }
              case 'fail':
                server.failures.push(op.how === 503 ? { status: 503 } : op.how)
                break
              case 'sync':
                await c.syncNow().catch(() => {})
                break
            }
          }
          server.failures = []
          await c.syncNow()
          await c.syncNow()
          expect(await c.pendingChangeCount()).toBe(0)
          const local = await c.query<{ id: string; name: string; del: number }>(
            'SELECT id, name, deleted_at IS NOT NULL AS del FROM lists ORDER BY id',
          )
          const remote = [...server.rows.get('lists')!.entries()]
            .map(([id, r]) => ({ id, name: String(r.data.name), del: r.deleted_at ? 1 : 0 }))
            .sort((a, b) => (a.id < b.id ? -1 : 1))
          // Live rows are identical on both sides. Tombstones may differ in presence only: a row created and deleted
          // locally before any push never reaches the server; a row created and deleted on the server between two
          // pulls never reaches the client.
          expect(local.filter((r) => r.del === 0)).toEqual(remote.filter((r) => r.del === 0))
          for (const r of local) {
            const srv = remote.find((x) => x.id === r.id)
            if (srv) expect(r.del).toBe(srv.del)
          }
          // Every local create that was not deleted before it was pushed reached the server.
          for (const id of ids) {
            const l = local.find((r) => r.id === id)
            if (l && l.del === 0) expect(server.rows.get('lists')!.has(id)).toBe(true)
          }
        } finally {
          await c.close()
          await server.stop()
        }
      }),
      { numRuns: Number(process.env.CONVERGENCE_RUNS ?? 40) },
    )
  }, 120_000)
})
