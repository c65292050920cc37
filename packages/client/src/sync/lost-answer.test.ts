/**
 * A push that reached the server (and was applied) but whose answer was lost: the client cannot know whether its
 * changes landed, and every later local write must still reach the server (SPEC.md invariant 1). The fake server's
 * 'lose' failure applies the request and then resets the connection instead of answering.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { FakeServer } from '../../test/fake-server.js'
import { cleanupTempDirs, makeClient, startSynced, uuid } from '../../test/helpers.js'
import type { SynchroClient } from '../client.js'
import { NetworkError } from '../errors.js'
import type { ConflictEvent } from './engine.js'

let server: FakeServer
const clients: SynchroClient[] = []

beforeEach(async () => {
  server = await new FakeServer().start()
})
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {})
  await server.stop()
})
afterAll(cleanupTempDirs)

async function started(): Promise<{ c: SynchroClient; conflicts: ConflictEvent[] }> {
  const c = makeClient(server.url, { maxRetryAttempts: 0, pushDebounce: 3600 })
  clients.push(c)
  const conflicts: ConflictEvent[] = []
  c.onConflict((e) => conflicts.push(e))
  await startSynced(c)
  return { c, conflicts }
}

/** Pushes the queue; the server applies the push, the answer never arrives. */
async function pushAndLoseAnswer(c: SynchroClient): Promise<void> {
  server.failures.push('lose')
  await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
  expect(server.requests.at(-1)).toMatchObject({ path: '/sync/push', status: -2 })
}

function serverRow(id: string) {
  return server.rows.get('lists')!.get(id)
}

function pushed(): { id: string; operation: string; base_updated_at?: string }[] {
  return server.requests
    .filter((r) => r.path === '/sync/push' && r.body)
    .flatMap((r) => r.body!.changes as { id: string; operation: string; base_updated_at?: string }[])
}

describe('a create whose push answer was lost', () => {
  it('a later local delete still deletes the server copy (and it does not come back on pull)', async () => {
    const { c, conflicts } = await started()
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'v1')`, [uuid(1)])
    await pushAndLoseAnswer(c)
    expect(serverRow(uuid(1))?.deleted_at).toBeNull()
    await c.execute('DELETE FROM lists WHERE id = ?', [uuid(1)])
    expect(await c.pendingChangeCount()).toBe(1)
    await c.syncNow()
    await c.syncNow()
    expect(serverRow(uuid(1))!.deleted_at).not.toBeNull()
    const local = await c.queryOne<{ deleted: number }>(
      'SELECT deleted_at IS NOT NULL AS deleted FROM lists WHERE id = ?',
      [uuid(1)],
    )
    expect(local).toEqual({ deleted: 1 })
    expect(await c.pendingChangeCount()).toBe(0)
    expect(conflicts).toEqual([])
  })

  it('a later local update wins over the server copy of the create, on both sides, without a conflict event', async () => {
    // The server's clock is far ahead: the update can only win through its base (= the server's stamp), not LWW.
    server.clockUs = Date.UTC(2099, 0, 1) * 1000
    const { c, conflicts } = await started()
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'v1')`, [uuid(1)])
    await pushAndLoseAnswer(c)
    await c.execute(`UPDATE lists SET name = 'v2' WHERE id = ?`, [uuid(1)])
    await c.syncNow()
    await c.syncNow()
    expect(serverRow(uuid(1))!.data.name).toBe('v2')
    expect(await c.queryOne('SELECT name FROM lists WHERE id = ?', [uuid(1)])).toEqual({ name: 'v2' })
    expect(await c.pendingChangeCount()).toBe(0)
    expect(conflicts).toEqual([])
    // create (lost answer) → create (record_exists) → update based on the server's stamp, within one cycle.
    const ops = pushed().map((x) => x.operation)
    expect(ops).toEqual(['create', 'create', 'update'])
    expect(pushed()[2]!.base_updated_at).toMatch(/^2099-01-01T/)
  })

  it('survives several lost answers in a row (the record_exists answer is lost too)', async () => {
    const { c, conflicts } = await started()
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'v1')`, [uuid(1)])
    await pushAndLoseAnswer(c)
    await c.execute(`UPDATE lists SET name = 'v2' WHERE id = ?`, [uuid(1)])
    await pushAndLoseAnswer(c)
    await c.execute(`UPDATE lists SET name = 'v3' WHERE id = ?`, [uuid(1)])
    await c.syncNow()
    expect(serverRow(uuid(1))!.data.name).toBe('v3')
    expect(await c.queryOne('SELECT name FROM lists WHERE id = ?', [uuid(1)])).toEqual({ name: 'v3' })
    expect(await c.pendingChangeCount()).toBe(0)
    expect(conflicts).toEqual([])
  })

  it('delete then undelete after the lost answer: the row stays live on the server with the local data', async () => {
    const { c } = await started()
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'v1')`, [uuid(1)])
    await pushAndLoseAnswer(c)
    await c.execute('DELETE FROM lists WHERE id = ?', [uuid(1)])
    await c.execute(`UPDATE lists SET deleted_at = NULL, name = 'back' WHERE id = ?`, [uuid(1)])
    await c.syncNow()
    expect(serverRow(uuid(1))).toMatchObject({ deleted_at: null, data: { name: 'back' } })
    expect(await c.queryOne('SELECT name, deleted_at FROM lists WHERE id = ?', [uuid(1)])).toEqual({
      name: 'back',
      deleted_at: null,
    })
    expect(await c.pendingChangeCount()).toBe(0)
  })

  it('a delete whose answer was lost, then an undelete: the row is resurrected on the server', async () => {
    server.clockUs = Date.UTC(2020, 0, 1) * 1000
    const { c } = await started()
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'v1')`, [uuid(1)])
    await c.syncNow()
    await c.execute('DELETE FROM lists WHERE id = ?', [uuid(1)])
    await pushAndLoseAnswer(c)
    expect(serverRow(uuid(1))!.deleted_at).not.toBeNull()
    await c.execute(`UPDATE lists SET deleted_at = NULL, name = 'back' WHERE id = ?`, [uuid(1)])
    await c.syncNow()
    expect(serverRow(uuid(1))).toMatchObject({ deleted_at: null, data: { name: 'back' } })
    expect(await c.pendingChangeCount()).toBe(0)
  })

  it('a create that never reached the server (connection dropped first), then deleted: nothing is left queued', async () => {
    const { c } = await started()
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'v1')`, [uuid(1)])
    server.failures.push('drop')
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    await c.execute('DELETE FROM lists WHERE id = ?', [uuid(1)])
    // Sent but maybe not applied: the delete is pushed, the server answers record_not_found (terminal, harmless).
    await c.syncNow()
    expect(serverRow(uuid(1))).toBeUndefined()
    expect(await c.pendingChangeCount()).toBe(0)
    // (the dropped request, then the delete)
    expect(pushed().map((x) => x.operation)).toEqual(['create', 'delete'])
  })

  it('a create and delete before any push still never reach the server (§4.2)', async () => {
    const { c } = await started()
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'v1')`, [uuid(1)])
    await c.execute('DELETE FROM lists WHERE id = ?', [uuid(1)])
    expect(await c.pendingChangeCount()).toBe(0)
    await c.syncNow()
    expect(pushed()).toEqual([])
  })

  it('record_exists on the first attempt of a create is still a conflict: the server version wins', async () => {
    const { c, conflicts } = await started()
    // Someone else's row with the same id, not pulled yet.
    server.serverUpsert('lists', uuid(2), { name: 'theirs' })
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'mine')`, [uuid(2)])
    await c.syncNow()
    expect(conflicts.map((x) => x.recordID)).toEqual([uuid(2)])
    expect(serverRow(uuid(2))!.data.name).toBe('theirs')
    expect(await c.queryOne('SELECT name FROM lists WHERE id = ?', [uuid(2)])).toEqual({ name: 'theirs' })
    expect(await c.pendingChangeCount()).toBe(0)
  })
})
