/**
 * A table the server starts syncing while the app holds rows in a local table of that name (a local-only table, or
 * a table the server had stopped syncing, whose rows stayed as local data). Real PostgreSQL, two engines over the
 * same database: the one the client first talks to does not sync `notes`, the second one does.
 */
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createEngine, createSyncHandler, type Engine, headerAuth, Registry } from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, startSynced } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'
import type { FetchLike } from './sync/transport.js'

let server: PgServer
let engine: Engine
let httpServer: http.Server
let notesURL = ''
const clients: SynchroClient[] = []

beforeAll(async () => {
  server = await startPgServer('synchro_client_adopted_table')
  await server.db.pool.query(`CREATE TABLE notes (
    id uuid PRIMARY KEY, user_id uuid NOT NULL, body text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)`)
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  registry.register({ tableName: 'notes', ownerColumn: 'user_id' })
  engine = await createEngine({ pool: server.db.pool, registry })
  httpServer = http.createServer(toNodeListener(createSyncHandler(engine, { authenticate: headerAuth() })))
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', () => r()))
  notesURL = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`
}, 120_000)

afterAll(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {})
  await new Promise<void>((r) => httpServer.close(() => r()))
  await engine.close().catch(() => {})
  await stopAll([], server)
}, 60_000)

describe('a local table the server starts syncing', () => {
  // connect reports the table as adopted and re-snapshots; the rows the snapshot does not bring were the app's, never
  // queued (the table had no CDC triggers): finishRebuild queues them as creates instead of deleting them.
  it('keeps the rows the app wrote in it before and pushes them, instead of deleting them', async () => {
    const user = randomUUID()
    const toNotes = { value: false }
    const fetchVia: FetchLike = (input, init) =>
      fetch(toNotes.value ? String(input).replace(server.url, notesURL) : input, init)
    const c = makeClient(server.url, { userID: user, clientID: `client-${randomUUID()}`, fetch: fetchVia })
    clients.push(c)
    await startSynced(c)
    await c.createTable('notes', [
      { name: 'id', type: 'TEXT', primaryKey: true },
      { name: 'user_id', type: 'TEXT' },
      { name: 'body', type: 'TEXT' },
      { name: 'created_at', type: 'TEXT' },
      { name: 'updated_at', type: 'TEXT' },
      { name: 'deleted_at', type: 'TEXT' },
    ])
    const id = randomUUID()
    await c.execute(`INSERT INTO notes (id, user_id, body) VALUES (?, ?, 'written offline')`, [id, user])
    toNotes.value = true // the server now syncs notes: 409, migrate (adopted), re-snapshot
    await c.syncNow()
    expect(await c.rejections()).toEqual([])
    const local = await c.query('SELECT body FROM notes WHERE id = ?', [id])
    const srv = await server.db.pool.query('SELECT body FROM notes WHERE id = $1', [id])
    expect(local).toEqual([{ body: 'written offline' }])
    expect(srv.rows).toEqual([{ body: 'written offline' }])
  })
})

describe('a table the server syncs again after it stopped', () => {
  // The row was the server's (pushed while notes was synced); the server hard-deleted it while it did not sync notes,
  // so no changelog entry ever reaches the device. finishRebuild took every live row the snapshot did not bring for
  // one the app wrote meanwhile and pushed it as a create: the deleted row was created again on the server, silently
  // (no tombstone to lose to). The rows held when syncing stopped are now noted as the server's (noteServerRows).
  it('does not create again on the server a row the server deleted while it did not sync the table', async () => {
    const user = randomUUID()
    const toNotes = { value: true }
    const fetchVia: FetchLike = (input, init) =>
      fetch(toNotes.value ? String(input).replace(server.url, notesURL) : input, init)
    const c = makeClient(server.url, { userID: user, clientID: `client-${randomUUID()}`, fetch: fetchVia })
    clients.push(c)
    await startSynced(c)
    const id = randomUUID()
    await c.execute(`INSERT INTO notes (id, user_id, body) VALUES (?, ?, 'synced once')`, [id, user])
    await c.syncNow()
    expect((await server.db.pool.query('SELECT 1 FROM notes WHERE id = $1', [id])).rowCount).toBe(1)
    toNotes.value = false // the server stops syncing notes: the row stays as local data
    await c.syncNow()
    await server.db.pool.query('DELETE FROM notes WHERE id = $1', [id])
    expect((await server.db.pool.query('SELECT 1 FROM notes WHERE id = $1', [id])).rowCount).toBe(0)
    const mine = randomUUID()
    await c.execute(`INSERT INTO notes (id, user_id, body) VALUES (?, ?, 'written while unsynced')`, [mine, user])
    toNotes.value = true // and syncs it again
    await c.syncNow()
    await c.syncNow()
    expect(await c.rejections()).toEqual([])
    expect((await server.db.pool.query('SELECT 1 FROM notes WHERE id = $1', [id])).rowCount).toBe(0)
    expect(await c.query('SELECT id FROM notes WHERE id = ?', [id])).toEqual([])
    // The app's own row, written while the table was not synced, still reaches the server.
    const srv = await server.db.pool.query('SELECT body FROM notes WHERE id = $1', [mine])
    expect(srv.rows).toEqual([{ body: 'written while unsynced' }])
  })
})
