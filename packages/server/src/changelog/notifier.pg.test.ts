import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startWalConsumer, type WalConsumer } from '../wal/index.js'
import { notifyBuckets, parsePoke } from './listener.js'

// Both polls are slowed to 10 minutes: every poke below can only come from NOTIFY/LISTEN or the re-read of the head
// that follows a (re)connect.
const NEVER = 600_000
let app: TestApp
let consumer: WalConsumer
beforeAll(async () => {
  app = await createTestApp({ engine: { live: { pollIntervalMs: NEVER, fallbackPollIntervalMs: NEVER } } })
  consumer = startWalConsumer({
    pool: app.db.pool,
    registry: app.engine.ctx.registry,
    replicationUrl: app.db.url,
    slotName: `live_${randomUUID().slice(0, 8)}`,
  })
  // Writes made before the slot exists are never captured: wait until the stream runs.
  for (let i = 0; i < 3000 && !consumer.status().running; i++) await new Promise((r) => setTimeout(r, 20))
  // Keeps the notifier (and its LISTEN connection) running from test to test.
  await subscribe('keeper')
}, 120_000)
afterAll(async () => {
  await consumer?.stop()
  await app?.close()
})

const users = new Map<string, string>()
const user = (name: string) => users.get(name) as string

/** Records the pokes of one subscription. */
async function subscribe(name: string) {
  const user = users.get(name) ?? randomUUID()
  users.set(name, user)
  const { clientId } = await app.registerClient(user)
  const pokes: number[] = []
  const waiters: (() => void)[] = []
  const unsubscribe = await app.engine.subscribeChanges(user, clientId, (seq) => {
    pokes.push(seq)
    for (const w of waiters.splice(0)) w()
  })
  const next = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${name}: no poke #${n} (got ${pokes.length})`)), 10_000)
      const check = () => {
        if (pokes.length >= n) {
          clearTimeout(t)
          resolve()
        } else waiters.push(check)
      }
      check()
    })
  return { pokes, next, unsubscribe }
}

/** The backend pid of the LISTEN connection once LISTEN has run on it (different from `not`). */
async function listenerPid(not?: number): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await app.db.pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'synchro-live' AND query LIKE 'LISTEN%'
          AND state = 'idle'`,
    )
    const pid = rows.map((r) => r.pid).find((p) => p !== not)
    if (pid !== undefined) return pid
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error('LISTEN connection not found')
}

const head = async () =>
  Number((await app.db.pool.query<{ s: string }>('SELECT max(seq)::text AS s FROM sync_changelog')).rows[0]?.s)

describe('live pokes by NOTIFY/LISTEN', () => {
  it('a captured batch pokes its buckets’ subscribers on commit with the new head — and nobody else', async () => {
    const alice = await subscribe('alice')
    const bob = await subscribe('bob')
    await listenerPid()
    await app.db.pool.query('INSERT INTO orders (user_id) VALUES ($1)', [user('alice')])
    await alice.next(1)
    expect(alice.pokes).toEqual([await head()])
    // bob's poke for his own write proves the alice batch was processed before: it never poked him.
    await app.db.pool.query('INSERT INTO orders (user_id) VALUES ($1)', [user('bob')])
    await bob.next(1)
    expect(bob.pokes).toEqual([await head()])
    expect(alice.pokes).toHaveLength(1)
    alice.unsubscribe()
    bob.unsubscribe()
  })

  it('a payload without buckets (too many for NOTIFY) pokes the subscribers of the buckets the changelog holds', async () => {
    const carol = await subscribe('carol')
    const dave = await subscribe('dave')
    await listenerPid()
    const many = Array.from({ length: 400 }, (_, i) => `user:someone-with-a-long-name-${i}`)
    expect(notifyBuckets(many)).toBe('null')
    expect(JSON.parse(notifyBuckets(['user:carol']))).toEqual(['user:carol'])
    // A real new head of carol's bucket (written without NOTIFY), announced by hand with the bucket-less payload:
    // the range's buckets are read from the changelog, so carol is poked and dave is not.
    const { rows } = await app.db.pool.query<{ seq: string }>(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
       VALUES ('user:' || $1, 'orders', gen_random_uuid()::text, 1) RETURNING seq::text`,
      [user('carol')],
    )
    const seq = Number(rows[0]?.seq)
    await app.db.pool.query(`SELECT pg_notify('synchro_changelog', $1)`, [`{"seq":${seq},"b":${notifyBuckets(many)}}`])
    await carol.next(1)
    expect(carol.pokes).toEqual([seq])
    // dave's poke for his own write proves the announced range was processed before: it never poked him.
    await app.db.pool.query('INSERT INTO orders (user_id) VALUES ($1)', [user('dave')])
    await dave.next(1)
    expect(dave.pokes).toEqual([await head()])
    expect(carol.pokes).toHaveLength(1)
    carol.unsubscribe()
    dave.unsubscribe()
  })

  it('malformed payloads are ignored', () => {
    expect(parsePoke('nope')).toBeUndefined()
    expect(parsePoke('{"seq":"1"}')).toBeUndefined()
    expect(parsePoke('{"seq":1,"b":[1]}')).toBeUndefined()
    expect(parsePoke('{"seq":7,"b":["x"]}')).toEqual({ seq: 7, buckets: new Set(['x']) })
  })

  it('after the LISTEN connection dies it reconnects, re-reads the head (changes in the gap poke) and listens again', async () => {
    const erin = await subscribe('erin')
    const pid = await listenerPid()
    // Written without NOTIFY (as if its notification had been sent while the listener was down): only the re-read
    // of the head after the reconnect can find it.
    const { rows } = await app.db.pool.query<{ seq: string }>(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
       VALUES ('user:' || $1, 'orders', gen_random_uuid()::text, 1) RETURNING seq::text`,
      [user('erin')],
    )
    await app.db.pool.query('SELECT pg_terminate_backend($1)', [pid])
    await erin.next(1)
    expect(erin.pokes).toEqual([Number(rows[0]?.seq)])
    await listenerPid(pid)
    await app.db.pool.query('INSERT INTO orders (user_id) VALUES ($1)', [user('erin')])
    await erin.next(2)
    expect(erin.pokes[1]).toBe(await head())
    erin.unsubscribe()
  })
})
