/**
 * Exact numbers end to end: real PostgreSQL + the real server (engine, HTTP over node:http, WAL consumer) + a
 * SynchroClient over a real SQLite file. bigint values beyond 2^53 up to ±2^63, a 40-digit numeric and long numbers
 * inside jsonb must keep their exact value in both directions.
 */
import { randomUUID } from 'node:crypto'
import { parseJsonLossless } from '@synchro/protocol'
import { Registry } from '@synchro/server'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanupTempDirs, makeClient, startSynced } from '../test/helpers.js'
import { openOpSqlite } from '../test/op-sqlite.js'
import { type SyncStack, startSyncStack } from '../test/sync-stack.js'
import type { SynchroClient } from './client.js'

const DDL = `
CREATE TABLE ledger (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  note text NOT NULL DEFAULT '',
  big bigint,
  amount numeric,
  price numeric(10,2) NOT NULL DEFAULT 0,
  payload jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
ALTER TABLE ledger REPLICA IDENTITY FULL;
`

const P53_1 = '9007199254740993'
const MIN64 = '-9223372036854775808'
const MAX64 = '9223372036854775807'
const NUM40 = '1234567890123456789012345678901234567890'
const NUM40_FRACTION = '12345678901234567890.12345678901234567891'
const PAYLOAD = '{"d": 3.1415926535897932384626433832795028, "n": 12345678901234567890, "list": [9007199254740993]}'

let db: TestDatabase
let stack: SyncStack
const clients: SynchroClient[] = []

interface ServerRow {
  id: string
  note: string
  big: string | null
  amount: string | null
  price: string
  payload: string
}

async function serverRows(user: string): Promise<ServerRow[]> {
  const { rows } = await db.pool.query<ServerRow>(
    `SELECT id::text, note, big::text, amount::text, price::text, payload::text FROM ledger WHERE user_id = $1 ORDER BY big`,
    [user],
  )
  return rows
}

interface LocalRow {
  id: string
  note: string
  big: string | null
  amount: string | number | null
  amount_type: string
  price: number
  payload: string
}

async function localRows(c: SynchroClient): Promise<LocalRow[]> {
  return c.query<LocalRow>(
    `SELECT id, note, CAST(big AS TEXT) AS big, amount, typeof(amount) AS amount_type, price, payload
       FROM ledger ORDER BY CAST(big AS INTEGER)`,
  )
}

/** The jsonb text PostgreSQL renders for `text` (its canonical form, to compare with exactly). */
async function jsonbText(text: string): Promise<string> {
  const { rows } = await db.pool.query<{ j: string }>('SELECT $1::jsonb::text AS j', [text])
  return rows[0]!.j
}

beforeAll(async () => {
  db = await createTestDatabase('synchro_exact_numbers')
  await db.pool.query(DDL)
  const registry = new Registry()
  registry.register({ tableName: 'ledger', ownerColumn: 'user_id' })
  stack = await startSyncStack(db, registry, 'exact_numbers')
}, 120_000)

afterAll(async () => {
  for (const c of clients.splice(0)) await c.close().catch(() => {})
  await stack?.close()
  await db?.drop()
  cleanupTempDirs()
}, 60_000)

const DRIVERS = {
  'better-sqlite3': undefined,
  'op-sqlite (Node build)': openOpSqlite,
} as const

describe.each(Object.entries(DRIVERS))('exact numbers between PostgreSQL and SQLite (%s)', (_name, driverFactory) => {
  it('bigint ±2^63, 2^53+1, 40-digit numerics and long jsonb numbers survive pull, snapshot and push', async () => {
    const user = randomUUID()
    const [r1, r2, r3] = [randomUUID(), randomUUID(), randomUUID()]
    await db.pool.query(
      `INSERT INTO ledger (id, user_id, big, amount, price, payload) VALUES
         ($1, $4, ${P53_1}, ${NUM40}, 12.50, $5::jsonb),
         ($2, $4, ${MIN64}, ${NUM40_FRACTION}, 0.1, '{}'),
         ($3, $4, 1, 1.5, 3, '{}')`,
      [r1, r2, r3, user, PAYLOAD],
    )
    const before = await serverRows(user)
    const c = makeClient(stack.url, {
      userID: user,
      clientID: `client-${randomUUID()}`,
      maxRetryAttempts: 1,
      ...(driverFactory ? { driverFactory } : {}),
    })
    clients.push(c)
    await startSynced(c)

    // PostgreSQL → SQLite (snapshot): int8 exact as INTEGER, numeric beyond a double as its exact text.
    let local = await localRows(c)
    expect(local.map((r) => r.big)).toEqual([MIN64, '1', P53_1])
    expect(local.map((r) => [r.amount, r.amount_type])).toEqual([
      [NUM40_FRACTION, 'text'],
      [1.5, 'real'],
      [NUM40, 'text'],
    ])
    expect(local.map((r) => r.price)).toEqual([0.1, 3, 12.5])
    const payload = local[2]!.payload
    expect(parseJsonLossless(payload)).toEqual(parseJsonLossless(PAYLOAD))
    expect(await jsonbText(payload)).toBe(await jsonbText(PAYLOAD))

    // PostgreSQL → SQLite (pull of a change made on the server).
    await db.pool.query(`UPDATE ledger SET big = ${MAX64}, updated_at = now() WHERE id = $1`, [r3])
    await stack.walCaughtUp()
    await c.syncNow()
    local = await localRows(c)
    expect(local.map((r) => r.big)).toEqual([MIN64, P53_1, MAX64])
    const afterPull = await serverRows(user)

    // A local edit of another column pushes the whole row: every big value must reach PostgreSQL unchanged.
    await c.execute(`UPDATE ledger SET note = 'edited' WHERE id IN (?, ?, ?)`, [r1, r2, r3])
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    const afterNoteEdit = await serverRows(user)
    expect(afterNoteEdit).toEqual(afterPull.map((r) => ({ ...r, note: 'edited' })))
    expect(afterNoteEdit.find((r) => r.id === r1)).toEqual({ ...before.find((r) => r.id === r1), note: 'edited' })

    // Local edits of the big values themselves (bound as bigint / exact text) and a create arrive exact.
    const newPayload = '{"n": -12345678901234567890, "d": 0.00000000000000000000000000000000001}'
    await c.execute(`UPDATE ledger SET big = ?, amount = ?, payload = ? WHERE id = ?`, [
      2n ** 63n - 1n,
      `-${NUM40}`,
      newPayload,
      r1,
    ])
    const r4 = randomUUID()
    await c.execute(`INSERT INTO ledger (id, user_id, big, amount, price, payload) VALUES (?, ?, ?, ?, ?, ?)`, [
      r4,
      user,
      -(2n ** 63n),
      NUM40_FRACTION,
      19.99,
      PAYLOAD,
    ])
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    const rows = new Map((await serverRows(user)).map((r) => [r.id, r]))
    expect(rows.get(r1)).toMatchObject({ big: MAX64, amount: `-${NUM40}`, payload: await jsonbText(newPayload) })
    expect(rows.get(r4)).toMatchObject({ big: MIN64, amount: NUM40_FRACTION, price: '19.99' })
    expect(rows.get(r4)!.payload).toBe(await jsonbText(PAYLOAD))
  }, 60_000)
})
