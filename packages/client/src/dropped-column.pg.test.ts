/**
 * A column the server drops, renames or adds NOT NULL while a device holds a queued, unpushed write of that table,
 * end to end (real PostgreSQL, the real server over HTTP, SQLite files). The client learns of the change from the 409
 * of its next push, migrates (additively: the local column stays), and pushes. Nothing may be lost silently: what
 * the new schema accepts reaches the server, and a value it cannot take is a `column_dropped` rejection.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, startSynced } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll, switchableFetch } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'

let server: PgServer
const clients: SynchroClient[] = []

beforeAll(async () => {
  server = await startPgServer('synchro_client_dropped_column')
}, 120_000)

afterAll(() => stopAll(clients, server), 60_000)

/** Columns a test added (and their renamed forms): dropped after it, so that the next test's fresh tables lack them. */
const added: string[] = []
afterEach(async () => {
  for (const name of added.splice(0)) {
    await sql(`ALTER TABLE orders DROP COLUMN IF EXISTS ${name}, DROP COLUMN IF EXISTS ${name}_renamed`)
  }
})

const sql = (text: string, params: unknown[] = []) => server.db.pool.query(text, params)

/** A synced client that can go offline, and its user. */
async function device(): Promise<{ c: SynchroClient; user: string; online: { value: boolean } }> {
  const user = randomUUID()
  const net = switchableFetch()
  const c = makeClient(server.url, {
    userID: user,
    clientID: `client-${randomUUID()}`,
    maxRetryAttempts: 1,
    fetch: net.fetch,
  })
  clients.push(c)
  await startSynced(c)
  return { c, user, online: net.online }
}

/** An order created on the device and synced, with `extra` columns set. */
async function syncedOrder(c: SynchroClient, user: string, extra: Record<string, string> = {}): Promise<string> {
  const id = randomUUID()
  const cols = Object.keys(extra)
  await c.execute(
    `INSERT INTO orders (id, user_id, ship_address${cols.map((k) => `, ${k}`).join('')})
     VALUES (?, ?, 'v1'${cols.map(() => ', ?').join('')})`,
    [id, user, ...Object.values(extra)],
  )
  await c.syncNow()
  await server.walCaughtUp()
  await c.syncNow()
  return id
}

/** A column only this test uses (the tests share one database). */
async function addColumn(ddl: string): Promise<string> {
  const name = `c_${randomUUID().slice(0, 8)}`
  added.push(name)
  await sql(`ALTER TABLE orders ADD COLUMN ${name} ${ddl}`)
  return name
}

async function serverRow(id: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await sql(`SELECT * FROM orders WHERE id = $1`, [id])
  return rows[0]
}

describe('a column dropped on the server while a write of the table is queued', () => {
  it('an edit of the dropped column is a column_dropped rejection carrying the value; the rest is pushed', async () => {
    const note = await addColumn('text')
    const { c, user, online } = await device()
    const id = await syncedOrder(c, user, { [note]: 'v1' })
    online.value = false
    await c.execute(`UPDATE orders SET ${note} = 'edited', ship_address = 'v2' WHERE id = ?`, [id])
    await sql(`ALTER TABLE orders DROP COLUMN ${note}`)
    online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect((await serverRow(id))?.ship_address).toBe('v2')
    const list = await c.rejections()
    expect(list).toEqual([
      expect.objectContaining({
        table: 'orders',
        recordID: id,
        operation: 'update',
        status: 'rejected_terminal',
        reasonCode: 'column_dropped',
        resolution: 'kept',
        clientData: { [note]: 'edited' },
      }),
    ])
    await expect(c.confirmed('orders', id)).rejects.toMatchObject({ code: 'WRITE_REJECTED' })
    // The local column is kept (migrations drop nothing), with the value the app wrote.
    expect(await c.queryOne(`SELECT ${note} AS v FROM orders WHERE id = ?`, [id])).toEqual({ v: 'edited' })
    // Reported once: later cycles and writes of other columns add nothing.
    await c.execute(`UPDATE orders SET ship_address = 'v3' WHERE id = ?`, [id])
    await c.syncNow()
    expect(await c.rejections()).toHaveLength(1)
    expect((await serverRow(id))?.ship_address).toBe('v3')
  })

  it('an edit of other columns only is pushed and nothing is reported (the old value was the server’s)', async () => {
    const note = await addColumn('text')
    const { c, user, online } = await device()
    const id = await syncedOrder(c, user, { [note]: 'v1' })
    online.value = false
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    await sql(`ALTER TABLE orders DROP COLUMN ${note}`)
    online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect((await serverRow(id))?.ship_address).toBe('v2')
    expect(await c.rejections()).toEqual([])
    await c.confirmed('orders', id)
  })

  it('a row created locally is created on the server; its value of the dropped column is reported', async () => {
    const note = await addColumn('text')
    const flag = await addColumn(`text NOT NULL DEFAULT 'dflt'`)
    const { c, user, online } = await device()
    online.value = false
    const id = randomUUID()
    // `flag` keeps its default: the app wrote nothing there, nothing is reported for it.
    await c.execute(`INSERT INTO orders (id, user_id, ship_address, ${note}) VALUES (?, ?, 'new', 'remember me')`, [
      id,
      user,
    ])
    await sql(`ALTER TABLE orders DROP COLUMN ${note}, DROP COLUMN ${flag}`)
    online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect((await serverRow(id))?.ship_address).toBe('new')
    expect(await c.rejections()).toEqual([
      expect.objectContaining({
        recordID: id,
        operation: 'create',
        reasonCode: 'column_dropped',
        clientData: { [note]: 'remember me' },
      }),
    ])
  })

  it('a delete queued for the row reports nothing: the row is gone on the server as well', async () => {
    const note = await addColumn('text')
    const { c, user, online } = await device()
    const id = await syncedOrder(c, user, { [note]: 'v1' })
    online.value = false
    await c.execute(`UPDATE orders SET ${note} = 'edited' WHERE id = ?`, [id])
    await c.execute(`DELETE FROM orders WHERE id = ?`, [id])
    await sql(`ALTER TABLE orders DROP COLUMN ${note}`)
    online.value = true
    await c.syncNow()
    expect((await serverRow(id))?.deleted_at).not.toBeNull()
    expect(await c.rejections()).toEqual([])
  })

  it('a write to the dropped column after the client migrated is reported too (an app that still writes it)', async () => {
    const note = await addColumn('text')
    const { c, user } = await device()
    const id = await syncedOrder(c, user, { [note]: 'v1' })
    await sql(`ALTER TABLE orders DROP COLUMN ${note}`)
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    await c.syncNow() // 409: migrate, push the edit (no dropped column in it: nothing reported)
    expect(await c.rejections()).toEqual([])
    await c.execute(`UPDATE orders SET ${note} = 'late' WHERE id = ?`, [id])
    await c.syncNow()
    expect(await c.rejections()).toEqual([
      expect.objectContaining({ recordID: id, reasonCode: 'column_dropped', clientData: { [note]: 'late' } }),
    ])
  })
})

describe('a column renamed on the server (a drop and an add, as the client sees it)', () => {
  it('a queued edit of the old name is reported; the new column gets the server’s value', async () => {
    const note = await addColumn('text')
    const { c, user, online } = await device()
    const id = await syncedOrder(c, user, { [note]: 'v1' })
    online.value = false
    await c.execute(`UPDATE orders SET ${note} = 'edited' WHERE id = ?`, [id])
    const memo = `${note}_renamed`
    await sql(`ALTER TABLE orders RENAME COLUMN ${note} TO ${memo}`)
    online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect((await serverRow(id))?.[memo]).toBe('v1')
    expect(await c.queryOne(`SELECT ${memo} AS v FROM orders WHERE id = ?`, [id])).toEqual({ v: 'v1' })
    const [r] = await c.rejections()
    expect(r).toMatchObject({ recordID: id, reasonCode: 'column_dropped', clientData: { [note]: 'edited' } })
    // The app can redo the edit under the new name.
    await c.execute(`UPDATE orders SET ${memo} = ? WHERE id = ?`, [String(r!.clientData![note]), id])
    await c.syncNow()
    expect((await serverRow(id))?.[memo]).toBe('edited')
  })

  it('a queued create when the renamed column is NOT NULL without default: rejected, and every value reported', async () => {
    const note = await addColumn(`text NOT NULL DEFAULT ''`)
    await sql(`ALTER TABLE orders ALTER COLUMN ${note} DROP DEFAULT`)
    const { c, user, online } = await device()
    online.value = false
    const id = randomUUID()
    await c.execute(`INSERT INTO orders (id, user_id, ship_address, ${note}) VALUES (?, ?, 'new', 'keep me')`, [
      id,
      user,
    ])
    const memo = `${note}_renamed`
    await sql(`ALTER TABLE orders RENAME COLUMN ${note} TO ${memo}`)
    online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect(await serverRow(id)).toBeUndefined()
    const list = await c.rejections()
    expect(list).toHaveLength(2)
    // The create, refused (the new column has no value): the row as pushed; the local row goes, as the server has
    // none (`refetch`: the push that met the 409 counts as attempted, so the data is downloaded again to know).
    expect(list.find((r) => r.reasonCode === 'constraint_violation')).toMatchObject({
      recordID: id,
      operation: 'create',
      clientData: expect.objectContaining({ id, ship_address: 'new' }),
    })
    expect(await c.queryOne('SELECT id FROM orders WHERE id = ?', [id])).toBeNull()
    // The value of the old column, which the row as pushed does not carry.
    expect(list.find((r) => r.reasonCode === 'column_dropped')).toMatchObject({
      recordID: id,
      clientData: { [note]: 'keep me' },
    })
    // The old column stays locally, nullable now: code that knows only the new name can insert (and is pushed).
    await c.execute(`INSERT INTO orders (id, user_id, ship_address, ${memo}) VALUES (?, ?, 'redo', 'keep me')`, [
      id,
      user,
    ])
    await c.syncNow()
    expect(await serverRow(id)).toMatchObject({ ship_address: 'redo', [memo]: 'keep me' })
    expect(await c.rejections()).toHaveLength(2)
  })
})

describe('a NOT NULL column without default added on the server while a create is queued', () => {
  it('the create is refused (constraint_violation) and surfaced with the row as written: nothing silent', async () => {
    const { c, user, online } = await device()
    online.value = false
    const id = randomUUID()
    await c.execute(`INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, 'queued')`, [id, user])
    const tag = await addColumn(`text NOT NULL DEFAULT 'x'`)
    await sql(`ALTER TABLE orders ALTER COLUMN ${tag} DROP DEFAULT`)
    online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect(await serverRow(id)).toBeUndefined()
    expect(await c.rejections()).toEqual([
      expect.objectContaining({
        recordID: id,
        operation: 'create',
        status: 'rejected_terminal',
        reasonCode: 'constraint_violation',
        clientData: expect.objectContaining({ id, user_id: user, ship_address: 'queued' }),
      }),
    ])
    expect(await c.queryOne('SELECT id FROM orders WHERE id = ?', [id])).toBeNull()
    // Redone with the new column, it is accepted.
    await c.execute(`INSERT INTO orders (id, user_id, ship_address, ${tag}) VALUES (?, ?, 'queued', 't')`, [id, user])
    await c.syncNow()
    expect((await serverRow(id))?.[tag]).toBe('t')
  })

  it('a queued update of an existing row is applied (the server keeps the backfilled value)', async () => {
    const { c, user, online } = await device()
    const id = await syncedOrder(c, user)
    online.value = false
    await c.execute(`UPDATE orders SET ship_address = 'v2' WHERE id = ?`, [id])
    const tag = await addColumn(`text NOT NULL DEFAULT 'x'`)
    await sql(`ALTER TABLE orders ALTER COLUMN ${tag} DROP DEFAULT`)
    online.value = true
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect(await serverRow(id)).toMatchObject({ ship_address: 'v2', [tag]: 'x' })
    expect(await c.rejections()).toEqual([])
    expect(await c.queryOne(`SELECT ${tag} AS v FROM orders WHERE id = ?`, [id])).toEqual({ v: 'x' })
  })
})
