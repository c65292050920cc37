// @vitest-environment happy-dom
// @vitest-environment-options {"settings":{"fetch":{"disableSameOriginPolicy":true}}}
/**
 * The hooks over real sync: PostgreSQL, the real server over node:http with its WAL consumer, and SynchroClients
 * over better-sqlite3 files, rendered by React in happy-dom.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { type FetchLike, SynchroClient } from '@synchro/client'
import { openBetterSqlite3 } from '@synchro/client/better-sqlite3'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { type Daemon, startDaemon } from '@synchro/test-harness/synchrod'
import { act, cleanup, renderHook, waitFor } from '@testing-library/react'
import { createElement, type ReactNode } from 'react'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { SynchroProvider, usePendingChanges, useQuery, useRejections, useSyncStatus } from './index.js'

// happy-dom's fetch, as a browser's, without the same-origin policy (the page would be served by the server).
const nodeFetch: FetchLike = (input, init) => globalThis.fetch(input, init)
let db: TestDatabase
let daemon: Daemon
let url = ''
const dir = mkdtempSync(path.join(tmpdir(), 'synchro-react-pg-'))
const clients: SynchroClient[] = []

beforeAll(async () => {
  db = await createTestDatabase('synchro_react')
  // The real daemon in a child process, on the demo schema (the Northwind orders).
  daemon = await startDaemon(['serve', '--demo'], {
    env: { DATABASE_URL: db.url, LISTEN_ADDR: '127.0.0.1:0', SLOT_NAME: db.name, LOG_LEVEL: 'warn' },
  })
  url = daemon.url
})
afterEach(cleanup)
afterAll(async () => {
  for (const c of clients.splice(0)) await c.close()
  daemon?.kill()
  await daemon?.exited
  await db?.drop()
  rmSync(dir, { recursive: true, force: true })
})

async function newClient(userID: string, fetchImpl: FetchLike = nodeFetch): Promise<SynchroClient> {
  const client = new SynchroClient({
    driver: await openBetterSqlite3(path.join(dir, `${randomUUID()}.sqlite`)),
    serverURL: url,
    userID,
    clientID: randomUUID(),
    appVersion: '1.0.0',
    syncInterval: 0,
    pushDebounce: 0.02,
    maxRetryAttempts: 0,
    fetch: fetchImpl,
  })
  clients.push(client)
  return client
}

function wrapper(client: SynchroClient) {
  return ({ children }: { children: ReactNode }) => createElement(SynchroProvider, { client }, children)
}

// Durable rejections (client.rejections()) come with the client's rejection work; until that is in the client,
// useRejections reports none and its sync test has nothing to run against.
const HAS_REJECTIONS = typeof (SynchroClient.prototype as unknown as { rejections?: unknown }).rejections === 'function'

const ORDERS = 'SELECT ship_address FROM orders WHERE deleted_at IS NULL ORDER BY ship_address'

describe('hooks over real sync', () => {
  it('useQuery re-renders with changes pulled from another device of the same user', async () => {
    const user = randomUUID()
    const a = await newClient(user)
    const b = await newClient(user)
    for (const x of [a, b]) {
      await x.start()
      await x.syncNow() // the first cycle: schema, local tables, register, snapshot
    }
    const { result } = renderHook(() => useQuery<{ ship_address: string }>(ORDERS), { wrapper: wrapper(b) })
    await waitFor(() => expect(result.current.isLoading).toBe(false))
    expect(result.current.data).toEqual([])
    await a.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [
      randomUUID(),
      user,
      '1 Pull St',
    ])
    // a pushes (debounce), the WAL consumer captures it, b's live stream pokes b, b pulls: no call into b here.
    await waitFor(() => expect(result.current.data).toEqual([{ ship_address: '1 Pull St' }]), { timeout: 15_000 })
  })

  it('usePendingChanges counts local writes and drops to zero once they are pushed; useSyncStatus tracks it', async () => {
    const user = randomUUID()
    let online = true
    const offlineFetch: FetchLike = (input, init) =>
      online ? nodeFetch(input, init) : Promise.reject(new TypeError('fetch failed (offline)'))
    const c = await newClient(user, offlineFetch)
    await c.start()
    await c.syncNow()
    const { result } = renderHook(() => ({ pending: usePendingChanges(), sync: useSyncStatus() }), {
      wrapper: wrapper(c),
    })
    online = false
    await act(async () => {
      await c.syncNow().catch(() => {})
    })
    await waitFor(() => expect(result.current.sync.online).toBe(false))
    expect(result.current.sync.status).toBe('error')
    expect(result.current.sync.error?.code).toBe('NETWORK_ERROR')
    const ids = [randomUUID(), randomUUID()]
    await act(async () => {
      for (const id of ids) {
        await c.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [id, user, `addr ${id}`])
      }
    })
    await waitFor(() => expect(result.current.pending.count).toBe(2))
    expect(result.current.pending.changes.map((p) => [p.tableName, p.operation]).sort()).toEqual([
      ['orders', 'create'],
      ['orders', 'create'],
    ])
    expect(result.current.pending.changes.map((p) => p.recordId).sort()).toEqual([...ids].sort())
    online = true
    await act(() => c.syncNow())
    await waitFor(() => expect(result.current.pending.count).toBe(0))
    await waitFor(() => expect(result.current.sync).toMatchObject({ online: true, status: 'idle', error: null }))
    expect(result.current.sync.lastSyncedAt).toBeInstanceOf(Date)
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM orders WHERE user_id = $1', [user])
    expect(rows[0].n).toBe(2)
  })

  it.skipIf(!HAS_REJECTIONS)('useRejections lists a write the server refused and clear() dismisses it', async () => {
    const c = await newClient(randomUUID())
    await c.start()
    await c.syncNow()
    const { result } = renderHook(() => useRejections(), { wrapper: wrapper(c) })
    expect(result.current.rejections).toEqual([])
    // products is read-only for clients (push disabled): the server rejects the write for good.
    const id = randomUUID()
    await act(() => c.execute(`INSERT INTO products (id, name) VALUES (?, 'Mine')`, [id]))
    await waitFor(() => expect(result.current.rejections).toHaveLength(1), { timeout: 15_000 })
    expect(result.current.rejections[0]).toMatchObject({ table: 'products', recordID: id, operation: 'create' })
    await act(() => result.current.clear())
    await waitFor(() => expect(result.current.rejections).toEqual([]))
  })
})
