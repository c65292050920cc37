import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { col, FakeServer, table } from '../test/fake-server.js'
import { cleanupTempDirs, makeClient, manualClock, startSynced, uuid, waitFor } from '../test/helpers.js'
import type { SynchroClient } from './client.js'
import { ConfigError, NetworkError, SnapshotRequiredError } from './errors.js'
import type { StatusEvent } from './sync/engine.js'

let server: FakeServer
const clients: SynchroClient[] = []
function client(over: Parameters<typeof makeClient>[1] = {}): SynchroClient {
  const c = makeClient(server.url, over)
  clients.push(c)
  return c
}

beforeEach(async () => {
  server = await new FakeServer().start()
})
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {})
  await server.stop()
})
afterAll(cleanupTempDirs)

function statuses(c: SynchroClient): StatusEvent[] {
  const out: StatusEvent[] = []
  c.onStatusChange((e) => out.push(e))
  return out
}

describe('config validation', () => {
  const base = {
    serverURL: 'http://x',
    userID: 'u',
    clientID: 'c',
    appVersion: '1',
    dbPath: 'x.db',
    driverFactory: () => {
      throw new Error()
    },
  }
  it.each([
    ['pullPageSize', { pullPageSize: 0 }],
    ['pushBatchSize', { pushBatchSize: 1001 }],
    ['snapshotPageSize', { snapshotPageSize: 1.5 }],
    ['syncInterval', { syncInterval: -1 }],
    ['maxRetryAttempts', { maxRetryAttempts: -2 }],
    ['maxPushAttempts', { maxPushAttempts: 0 }],
    ['serverURL', { serverURL: 'ftp://x' }],
    ['clientID', { clientID: '' }],
    ['authProvider', { userID: undefined }],
    ['dbPath', { dbPath: undefined }],
  ])('rejects a bad %s with a typed ConfigError', async (field, over) => {
    const { makeClient: _m, ...rest } = { makeClient: 0, ...base, ...over }
    const { SynchroClient: C } = await import('./client.js')
    let err: unknown
    try {
      new C(rest as never)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe('INVALID_CONFIG')
    expect((err as ConfigError).field).toBe(field)
  })
})

describe('SQL API', () => {
  it('query/queryOne/execute/executeBatch/transactions with rollback on throw', async () => {
    const c = client()
    await c.createTable('notes', [
      { name: 'id', type: 'INTEGER', primaryKey: true },
      { name: 'body', type: 'TEXT', nullable: false, defaultValue: '' },
    ])
    expect(await c.execute('INSERT INTO notes (id, body) VALUES (?, ?)', [1, 'a'])).toEqual({ rowsAffected: 1 })
    expect(
      await c.executeBatch([
        { sql: 'INSERT INTO notes (id) VALUES (2)' },
        { sql: 'UPDATE notes SET body = ?', params: ['z'] },
      ]),
    ).toEqual({
      totalRowsAffected: 3,
    })
    const mine = new Error('nope')
    await expect(
      c.writeTransaction(async (tx) => {
        await tx.execute('INSERT INTO notes (id) VALUES (3)')
        throw mine
      }),
    ).rejects.toBe(mine)
    await expect(c.execute('INSERT INTO notes (id) VALUES (1)')).rejects.toMatchObject({ code: 'DATABASE_ERROR' })
    await expect(c.writeTransaction((tx) => tx.execute('INSERT INTO notes (id) VALUES (1)'))).rejects.toMatchObject({
      code: 'DATABASE_ERROR',
    })
    expect(await c.query('SELECT id, body FROM notes ORDER BY id')).toEqual([
      { id: 1, body: 'z' },
      { id: 2, body: 'z' },
    ])
    expect(await c.queryOne('SELECT id FROM notes WHERE id = 9')).toBeNull()
    const n = await c.readTransaction(
      async (tx) => (await tx.queryOne<{ n: number }>('SELECT count(*) AS n FROM notes'))!.n,
    )
    expect(n).toBe(2)
    await c.alterTable('notes', [{ name: 'tag', type: 'TEXT', defaultValue: 'x' }])
    await c.createIndex('notes', ['tag'])
    expect(await c.queryOne('SELECT tag FROM notes WHERE id = 1')).toEqual({ tag: 'x' })
    await expect(c.createTable('_synchro_x', [{ name: 'a', type: 'TEXT' }])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
    await expect(c.createTable('bad name', [{ name: 'a', type: 'TEXT' }])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })

  it('onChange and watch fire for writes, including trigger-made ones, and watch fires immediately', async () => {
    const c = client()
    await c.createTable('a', [{ name: 'v', type: 'INTEGER' }])
    await c.createTable('b', [{ name: 'v', type: 'INTEGER' }])
    await c.execute(`CREATE TRIGGER a_to_b AFTER INSERT ON a BEGIN INSERT INTO b VALUES (NEW.v); END`)
    const changes: string[][] = []
    const off = c.onChange(['b'], (t) => changes.push(t))
    const seen: number[][] = []
    const unwatch = c.watch<{ v: number }>('SELECT v FROM b ORDER BY v', undefined, ['b'], (rows) =>
      seen.push(rows.map((r) => r.v)),
    )
    await waitFor(() => seen.length === 1)
    await c.execute('INSERT INTO a VALUES (1)')
    await waitFor(() => seen.length === 2)
    expect(changes).toEqual([['b']])
    expect(seen).toEqual([[], [1]])
    off()
    unwatch()
    await c.execute('INSERT INTO a VALUES (2)')
    expect(changes).toHaveLength(1)
  })
})

describe('sync', () => {
  it('start: schema → tables → register → bootstrap snapshot → idle, with progress in status events', async () => {
    for (let i = 0; i < 250; i++) server.serverUpsert('lists', uuid(i), { name: `L${i}` })
    const c = client({ snapshotPageSize: 100 })
    const ev = statuses(c)
    await startSynced(c)
    expect(c.status.status).toBe('idle')
    expect(ev[0]!.status).toBe('connecting')
    const progress = ev.filter((e) => e.progress?.phase === 'snapshot').map((e) => e.progress!)
    expect(progress.at(-1)).toMatchObject({ phase: 'snapshot', rows: 250, pages: 3 })
    expect(progress.at(-1)!.tablesDone).toBe(progress.at(-1)!.tablesTotal)
    expect(ev.at(-1)).toEqual({ status: 'idle', retryAt: null })
    expect(await c.queryOne('SELECT count(*) AS n FROM lists')).toEqual({ n: 250 })
    expect(await c.queryOne(`SELECT value FROM _synchro_meta WHERE key = 'snapshot_complete'`)).toEqual({ value: '1' })
    expect(await c.pendingChangeCount()).toBe(0)
    await expect(c.start()).rejects.toMatchObject({ code: 'ALREADY_STARTED' })
  })

  it('local writes are pushed after the debounce (observing the queue) and server stamps written back', async () => {
    const c = client({ pushDebounce: 0.03 })
    await startSynced(c)
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'mine')`, [uuid(1)])
    expect(await c.pendingChangeCount()).toBe(1)
    await waitFor(async () => (await c.pendingChangeCount()) === 0, 3000, 'debounced push')
    const srv = server.rows.get('lists')!.get(uuid(1))!
    expect(srv.data.name).toBe('mine')
    const local = await c.queryOne<{ updated_at: string }>('SELECT updated_at FROM lists WHERE id = ?', [uuid(1)])
    expect(local!.updated_at.replace('Z', '+00:00')).toBe(srv.updated_at)
    // Hard delete → soft delete locally, 'delete' pushed, server_deleted_at written back.
    await c.execute('DELETE FROM lists WHERE id = ?', [uuid(1)])
    await c.syncNow()
    expect(server.rows.get('lists')!.get(uuid(1))!.deleted_at).not.toBeNull()
    const row = await c.queryOne<{ deleted_at: string }>('SELECT deleted_at FROM lists WHERE id = ?', [uuid(1)])
    expect(row!.deleted_at.replace('Z', '+00:00')).toBe(server.rows.get('lists')!.get(uuid(1))!.deleted_at)
  })

  it('a steady stream of writes does not starve the debounced push (deadline capped at 2 × pushDebounce)', async () => {
    const c = client({ pushDebounce: 0.2 })
    await startSynced(c)
    const pushesBefore = server.requests.filter((r) => r.path === '/sync/push').length
    // One write every 50 ms for 1.2 s: a plain debounce (reset by every write) would not push until the writes stop.
    for (let i = 0; i < 24; i++) {
      await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'w')`, [uuid(100 + i)])
      await new Promise((r) => setTimeout(r, 50))
    }
    const duringWrites = server.requests.filter((r) => r.path === '/sync/push').length - pushesBefore
    expect(duringWrites).toBeGreaterThanOrEqual(2)
  })

  it('the first write after a quiet spell is pushed at once; a write right behind it is debounced', async () => {
    // A clock that can jump ahead; debounce timers of an hour never fire during the test.
    let offset = 0
    const delays: number[] = []
    const c = client({
      pushDebounce: 3600,
      timers: {
        now: () => Date.now() + offset,
        setTimeout: (fn, ms) => {
          delays.push(ms)
          return setTimeout(fn, ms)
        },
        clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      },
    })
    await startSynced(c)
    offset += 3_600_000
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'first')`, [uuid(1)])
    await waitFor(async () => (await c.pendingChangeCount()) === 0, 5000, 'immediate push')
    expect(server.rows.get('lists')?.get(uuid(1))?.data.name).toBe('first')
    // Right behind the push that just started: a burst, coalesced by the debounce (an hour here).
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'second')`, [uuid(2)])
    expect(delays.at(-1)).toBeGreaterThan(3_500_000)
    expect(await c.pendingChangeCount()).toBe(1)
  })

  it('round-trips booleans, JSON, arrays and bytea (Decisions 23, 27)', async () => {
    const c = client({ pushDebounce: 3600 }) // one push, by syncNow below
    await startSynced(c)
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'l')`, [uuid(1)])
    await c.execute(
      `INSERT INTO items (id, list_id, title, done, meta, tags, blob, big, price) VALUES (?, ?, 't', ?, ?, ?, ?, ?, ?)`,
      [uuid(2), uuid(1), true, '{"a":[1,2]}', '["x","y"]', new Uint8Array([0, 255, 16]), 2 ** 40, 9.99],
    )
    await c.execute(`INSERT INTO items (id, list_id) VALUES (?, ?)`, [uuid(3), uuid(1)])
    await c.syncNow()
    const push = server.requests.find((r) => r.path === '/sync/push')!
    const changes = push.body!.changes as { id: string; table_name: string; data: { [k: string]: unknown } }[]
    // Parents first, whatever the order of the writes' timestamps.
    expect(changes.map((x) => x.table_name)).toEqual(['lists', 'items', 'items'])
    const item = changes.find((x) => x.id === uuid(2))!.data
    expect(item).toMatchObject({
      done: true,
      meta: { a: [1, 2] },
      tags: ['x', 'y'],
      blob: '\\x00ff10',
      big: 2 ** 40,
      price: 9.99,
    })
    const dflt = changes.find((x) => x.id === uuid(3))!.data
    expect(dflt).toMatchObject({ done: false, meta: {}, tags: [], blob: null })
    expect(String(dflt.created_at)).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/)
    // And back: a server-side write arrives as SQLite values.
    server.serverUpsert('items', uuid(4), {
      list_id: uuid(1),
      done: true,
      meta: { k: 'v' },
      tags: ['q'],
      blob: '\\x0a0b',
    })
    await c.syncNow()
    const r = await c.queryOne<{ done: number; meta: string; tags: string; blob: Uint8Array }>(
      'SELECT done, meta, tags, blob FROM items WHERE id = ?',
      [uuid(4)],
    )
    expect(r!.done).toBe(1)
    expect(JSON.parse(r!.meta)).toEqual({ k: 'v' })
    expect(JSON.parse(r!.tags)).toEqual(['q'])
    expect(Array.from(r!.blob)).toEqual([10, 11])
  })

  it('conflict: drops the change, stores the server version and reports clientData + serverData', async () => {
    server.serverUpsert('lists', uuid(1), { name: 'v0' })
    const c = client({ pushDebounce: 3600 }) // pushes only by syncNow
    await startSynced(c)
    const conflicts: unknown[] = []
    c.onConflict((e) => conflicts.push(e))
    // The client edits offline based on v0; meanwhile the server moves on (its stamp is later than our edit).
    await c.execute(`UPDATE lists SET name = 'mine' WHERE id = ?`, [uuid(1)])
    await new Promise((r) => setTimeout(r, 5))
    server.serverUpsert('lists', uuid(1), { name: 'theirs' })
    server.now() // push the server clock past the client's edit time
    const row = server.rows.get('lists')!.get(uuid(1))!
    row.updated_at = '2099-01-01T00:00:00.000001+00:00'
    row.data.updated_at = row.updated_at
    await c.syncNow()
    expect(conflicts).toEqual([
      {
        table: 'lists',
        recordID: uuid(1),
        clientData: expect.objectContaining({ name: 'mine' }),
        serverData: expect.objectContaining({ name: 'theirs' }),
      },
    ])
    expect(await c.queryOne('SELECT name FROM lists WHERE id = ?', [uuid(1)])).toEqual({ name: 'theirs' })
    expect(await c.pendingChangeCount()).toBe(0)
  })

  it('pull: RYOW skip, soft deletes, deleted records, pending rows untouched, checkpoint only moves up', async () => {
    const clock = manualClock()
    const c = client({ maxRetryAttempts: 0, timers: clock.timers })
    await startSynced(c)
    server.serverUpsert('lists', uuid(1), { name: 'a' })
    server.serverUpsert('lists', uuid(2), { name: 'b' })
    server.serverUpsert('lists', uuid(3), { name: 'c' })
    await c.syncNow()
    const cp1 = Number(
      (await c.queryOne<{ value: string }>(`SELECT value FROM _synchro_meta WHERE key = 'checkpoint'`))!.value,
    )
    expect(cp1).toBe(server.seq)
    // RYOW: a local stamp after the record's (in another rendering) keeps the local row.
    await c.writeTransaction(async (tx) => {
      await tx.execute(`UPDATE _synchro_meta SET value = '1' WHERE key = 'sync_lock'`)
      await tx.execute(`UPDATE lists SET name = 'local', updated_at = '2099-01-01T00:00:00.000001Z' WHERE id = ?`, [
        uuid(1),
      ])
      await tx.execute(`UPDATE _synchro_meta SET value = '0' WHERE key = 'sync_lock'`)
    })
    server.serverUpsert('lists', uuid(1), { name: 'server' })
    // A row with a queued local change is not overwritten by pulled data.
    server.retryableIds.add(uuid(2))
    await c.execute(`UPDATE lists SET name = 'pending' WHERE id = ?`, [uuid(2)])
    server.serverUpsert('lists', uuid(2), { name: 'server2' })
    server.serverDelete('lists', uuid(3))
    // The retryable change waits for its retry; the pull still runs (pending rows are protected).
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(1)
    expect(await c.queryOne('SELECT name FROM lists WHERE id = ?', [uuid(1)])).toEqual({ name: 'local' })
    expect(await c.queryOne('SELECT name FROM lists WHERE id = ?', [uuid(2)])).toEqual({ name: 'pending' })
    const r3 = await c.queryOne<{ deleted_at: string | null }>('SELECT deleted_at FROM lists WHERE id = ?', [uuid(3)])
    expect(r3!.deleted_at).not.toBeNull()
    const cp2 = Number(
      (await c.queryOne<{ value: string }>(`SELECT value FROM _synchro_meta WHERE key = 'checkpoint'`))!.value,
    )
    expect(cp2).toBe(server.seq)
    server.retryableIds.clear()
    clock.advance(1000)
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    // A stale page (lower checkpoint) must not rewind the stored checkpoint.
    server.mutatePull = (out) => {
      out.checkpoint = 1
    }
    await c.syncNow()
    const cp3 = Number(
      (await c.queryOne<{ value: string }>(`SELECT value FROM _synchro_meta WHERE key = 'checkpoint'`))!.value,
    )
    expect(cp3).toBeGreaterThanOrEqual(cp2)
    server.mutatePull = null
    // A changed record that carries deleted_at is stored as a delete (soft).
    server.serverUpsert('lists', uuid(4), { name: 'd' })
    server.serverDelete('lists', uuid(4))
    server.log = server.log.map((e) => (e.id === uuid(4) ? { ...e, op: 2 } : e))
    await c.syncNow()
    const r4 = await c.queryOne<{ deleted_at: string | null }>('SELECT deleted_at FROM lists WHERE id = ?', [uuid(4)])
    expect(r4!.deleted_at).not.toBeNull()
    expect(await c.queryOne(`SELECT value FROM _synchro_meta WHERE key = 'known_buckets'`)).toEqual({
      value: '["user:u1","global"]',
    })
  })

  it('coalesces concurrent syncNow calls into one rerun of the running cycle', async () => {
    const c = client()
    await startSynced(c)
    const before = c.syncCycles
    server.latencyMs = 30
    const calls = [c.syncNow(), c.syncNow(), c.syncNow(), c.syncNow(), c.syncNow()]
    await Promise.all(calls)
    expect(c.syncCycles - before).toBe(2)
  })

  it('retries 503 honouring Retry-After, reports error+retryAt, then recovers to idle', async () => {
    const c = client({ maxRetryAttempts: 3 })
    await startSynced(c)
    const ev = statuses(c)
    server.failures.push({ status: 503, retryAfter: 0.05 }, { status: 503, retryAfter: 0.05 })
    const t0 = Date.now()
    await c.syncNow()
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90)
    const errors = ev.filter((e) => e.status === 'error')
    expect(errors).toHaveLength(2)
    expect(errors[0]!.retryAt).toBeInstanceOf(Date)
    expect(errors[0]!.error?.code).toBe('SERVER_ERROR')
    expect(ev.map((e) => e.status)).toEqual(['syncing', 'error', 'syncing', 'error', 'syncing', 'idle'])
  })

  it('an unreachable server never loses queued writes and never stalls the queue', async () => {
    const c = client({ maxRetryAttempts: 1, random: () => 0, pushDebounce: 60 })
    await startSynced(c)
    server.down = 'drop'
    for (let i = 0; i < 20; i++) await c.execute(`INSERT INTO lists (id, name) VALUES (?, ?)`, [uuid(i), `n${i}`])
    await c.execute(`UPDATE lists SET name = 'changed' WHERE id = ?`, [uuid(0)])
    const t0 = Date.now()
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    // One backoff sleep (1 s base, no jitter) and no sleep after the final attempt.
    expect(Date.now() - t0).toBeLessThan(1900)
    expect(c.status.status).toBe('error')
    expect(await c.pendingChangeCount()).toBe(20)
    server.down = null
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect(server.rows.get('lists')!.size).toBe(20)
    expect(server.rows.get('lists')!.get(uuid(0))!.data.name).toBe('changed')
  })

  it('the timer retries after a cycle that exhausted its retries', async () => {
    const c = client({ maxRetryAttempts: 0, syncInterval: 0.05 })
    await startSynced(c)
    server.down = { status: 503 }
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'x')`, [uuid(1)])
    await waitFor(() => c.status.status === 'error', 3000, 'error status')
    expect(c.status.retryAt).toBeInstanceOf(Date)
    server.down = null
    await waitFor(async () => (await c.pendingChangeCount()) === 0, 3000, 'timer push')
    await waitFor(() => c.status.status === 'idle')
  })

  it('409 mid-session: refetches the schema, adds the column, re-registers and pushes without losing changes', async () => {
    const c = client()
    await startSynced(c)
    await c.createTable('local_notes', [
      { name: 'id', type: 'TEXT', primaryKey: true },
      { name: 'v', type: 'TEXT' },
    ])
    await c.execute(`INSERT INTO local_notes VALUES ('n', 'keep')`)
    server.latencyMs = 0
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'before')`, [uuid(1)])
    server.addColumn('lists', col('color', 'string', { db: 'text', nullable: false, def: "'red'" }), 'red')
    server.addTable(table('tags', [col('label', 'string', { db: 'text' })]))
    server.serverUpsert('tags', uuid(9), { label: 'existing' })
    await c.syncNow()
    expect(server.rows.get('lists')!.get(uuid(1))!.data).toMatchObject({ name: 'before', color: 'red' })
    const cols = await c.query<{ name: string }>(`SELECT name FROM pragma_table_info('lists')`)
    expect(cols.map((x) => x.name)).toContain('color')
    // The new table was created and filled by a re-snapshot; local-only tables are untouched.
    expect(await c.query('SELECT label FROM tags')).toEqual([{ label: 'existing' }])
    expect(await c.query('SELECT * FROM local_notes')).toEqual([{ id: 'n', v: 'keep' }])
    const registers = server.requests.filter((r) => r.path === '/sync/register')
    expect(registers.at(-1)!.body!.schema_version).toBe(server.schemaVersion)
    await c.execute(`INSERT INTO lists (id, name, color) VALUES (?, 'after', 'blue')`, [uuid(2)])
    await c.syncNow()
    expect(server.rows.get('lists')!.get(uuid(2))!.data.color).toBe('blue')
    expect(await c.pendingChangeCount()).toBe(0)
  })

  it('snapshot_required (retention): needs approval, pushes the queue first and keeps what could not be pushed', async () => {
    server.serverUpsert('lists', uuid(1), { name: 'a' })
    const c = client({ maxRetryAttempts: 0 })
    await startSynced(c)
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'unpushable')`, [uuid(2)])
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'pushable')`, [uuid(3)])
    server.retryableIds.add(uuid(2))
    server.forceSnapshot = 'checkpoint_before_retention'
    c.onSnapshotRequired(() => false)
    // Refused: the local data stays as it is.
    await expect(c.syncNow()).rejects.toBeInstanceOf(SnapshotRequiredError)
    expect(await c.queryOne('SELECT count(*) AS n FROM lists')).toEqual({ n: 3 })
  })

  it('an approved rebuild replaces synced rows but keeps rows with queued changes (Decision 21)', async () => {
    server.serverUpsert('lists', uuid(1), { name: 'a' })
    const clock = manualClock()
    const c = client({ maxRetryAttempts: 0, timers: clock.timers })
    await startSynced(c)
    // A row the server no longer has (as if compacted away): must disappear with the rebuild.
    await c.writeTransaction(async (tx) => {
      await tx.execute(`UPDATE _synchro_meta SET value = '1' WHERE key = 'sync_lock'`)
      await tx.execute(`INSERT INTO lists (id, name) VALUES (?, 'ghost')`, [uuid(7)])
      await tx.execute(`UPDATE _synchro_meta SET value = '0' WHERE key = 'sync_lock'`)
    })
    await c.execute(`INSERT INTO lists (id, name) VALUES (?, 'unpushable')`, [uuid(2)])
    server.retryableIds.add(uuid(2))
    server.forceSnapshot = 'checkpoint_before_retention'
    let asked = 0
    c.onSnapshotRequired(async () => {
      asked++
      server.forceSnapshot = null
      return true
    })
    await c.syncNow()
    expect(asked).toBe(1)
    expect(await c.query('SELECT id, name FROM lists ORDER BY id')).toEqual([
      { id: uuid(1), name: 'a' },
      { id: uuid(2), name: 'unpushable' },
    ])
    expect(await c.pendingChangeCount()).toBe(1)
    server.retryableIds.clear()
    clock.advance(1000)
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect(server.rows.get('lists')!.get(uuid(2))!.data.name).toBe('unpushable')
  })

  it('stop() cancels backoff waits and moves to stopped; syncNow after stop is NOT_STARTED', async () => {
    const c = client({ maxRetryAttempts: 5 })
    await startSynced(c)
    server.down = { status: 503, retryAfter: 30 }
    const p = c.syncNow()
    await waitFor(() => c.status.status === 'error')
    await c.stop()
    await p.catch(() => {})
    expect(c.status.status).toBe('stopped')
    await expect(c.syncNow()).rejects.toMatchObject({ code: 'NOT_STARTED' })
  })
})

describe('requests', () => {
  it('abandons a hung request after requestTimeout and stop() aborts requests in flight', async () => {
    const c = client({ requestTimeout: 0.1, maxRetryAttempts: 0 })
    await startSynced(c)
    server.latencyMs = 2000
    const t0 = Date.now()
    await expect(c.syncNow()).rejects.toBeInstanceOf(NetworkError)
    expect(Date.now() - t0).toBeLessThan(1500)
    const c2 = client({ maxRetryAttempts: 0 })
    server.latencyMs = 0
    await startSynced(c2)
    server.latencyMs = 5000
    const p = c2.syncNow().catch((e: unknown) => e)
    await waitFor(() => server.requests.length > 0 && c2.status.status === 'syncing')
    const t1 = Date.now()
    await c2.stop()
    expect(Date.now() - t1).toBeLessThan(1500)
    await p
    expect(c2.status.status).toBe('stopped')
  })
})

describe('observation of tables created later', () => {
  it('onChange works for a table that did not exist when observed', async () => {
    const c = client()
    const seen: string[][] = []
    c.onChange(['later'], (t) => seen.push(t))
    await c.execute('CREATE TABLE later (v INTEGER)')
    await c.execute('INSERT INTO later VALUES (1)')
    expect(seen).toEqual([['later']])
  })
})

describe('auth and version', () => {
  it('calls authProvider before every request and sends Bearer + X-App-Version', async () => {
    let calls = 0
    const c = client({ userID: undefined, authProvider: async () => `tok-${++calls}`, appVersion: '2.0.0' })
    await startSynced(c)
    const reqs = server.requests
    expect(reqs.length).toBeGreaterThanOrEqual(4)
    expect(calls).toBe(reqs.length)
    expect(reqs.map((r) => r.headers?.authorization)).toEqual(reqs.map((_, i) => `Bearer tok-${i + 1}`))
    expect(reqs.every((r) => r.headers?.['x-app-version'] === '2.0.0' && r.headers?.['x-user-id'] === undefined)).toBe(
      true,
    )
  })

  it('426 → UPGRADE_REQUIRED, not retried, status error without retryAt', async () => {
    server.minAppVersion = '9'
    const c = client({ maxRetryAttempts: 5 })
    await c.start()
    await waitFor(() => c.status.status === 'error')
    expect(c.status.error?.code).toBe('UPGRADE_REQUIRED')
    expect(c.status.retryAt).toBeNull()
    expect(server.requests).toHaveLength(1)
  })
})
