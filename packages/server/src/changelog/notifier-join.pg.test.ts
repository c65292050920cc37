/**
 * A subscriber that joins while the notifier is reading a range must not be handed that range: its buckets may
 * have entries between its own checkpoint and the range's start, which a live data frame starting at its checkpoint
 * would then stand for without carrying. Real PostgreSQL; the bucket read is held at a gate so the join lands inside.
 */
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runMigrations } from '../migrations/migrations.js'
import { ChangelogNotifier, type PokeRange } from './notifier.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
  await runMigrations(db.pool)
}, 120_000)
afterAll(async () => {
  await db?.drop()
})

const silent = { debug() {}, info() {}, warn() {}, error() {} }
const insert = async (bucket: string) =>
  Number(
    (
      await db.pool.query<{ seq: string }>(
        `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 't', gen_random_uuid()::text, 1)
         RETURNING seq::text AS seq`,
        [bucket],
      )
    ).rows[0]?.seq,
  )
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms))

it('a subscriber joining while a range is read gets a plain poke for it, never the range', async () => {
  // The bucket read's answer (`SELECT DISTINCT bucket_id …`) waits at a gate while `gated` is set.
  let gated = false
  let pending: (() => void) | undefined
  let reached: (() => void) | undefined
  const atGate = new Promise<void>((r) => {
    reached = r
  })
  const pool = {
    options: db.pool.options,
    query: async (text: string, values?: unknown[]) => {
      const result = await db.pool.query(text, values)
      // The answer is in; handing it over waits at the gate (released in the same tick as the join below).
      if (gated && text.includes('DISTINCT bucket_id')) {
        reached?.()
        await new Promise<void>((r) => {
          pending = r
        })
      }
      return result
    },
  } as unknown as pg.Pool
  const notifier = new ChangelogNotifier(pool, { listen: false, pollMs: 20, fallbackPollMs: 20 }, silent)
  const stop = notifier.subscribe(['keeper'], () => {})
  try {
    const checkpoint = await insert('other') // where the late subscriber's client stands
    await insert('late') // an entry of its bucket the notifier reads before it joins
    await settle(200)
    gated = true
    await insert('late') // the range being read when it joins
    await atGate
    const got: (PokeRange | undefined)[] = []
    notifier.subscribe(['late'], (_seq, range) => got.push(range), checkpoint)
    pending?.() // the read completes before the newcomer's own settling runs
    await settle(200)
    expect(got.length).toBeGreaterThanOrEqual(1)
    expect(got[0]).toBeUndefined()
  } finally {
    gated = false
    pending?.()
    stop()
    notifier.stop()
  }
})

it('a bucket read that fails does not hide its range: the subscribers get a plain poke for it', async () => {
  let failNext = false
  const pool = {
    options: db.pool.options,
    query: async (text: string, values?: unknown[]) => {
      if (failNext && text.includes('DISTINCT bucket_id')) {
        failNext = false
        throw Object.assign(new Error('connection reset'), { code: '08006' })
      }
      return db.pool.query(text, values)
    },
  } as unknown as pg.Pool
  const notifier = new ChangelogNotifier(pool, { listen: false, pollMs: 20, fallbackPollMs: 20 }, silent)
  const got: { seq: number; range?: PokeRange }[] = []
  await notifier.ready()
  const stop = notifier.subscribe(['b'], (seq, range) => got.push({ seq, range }))
  try {
    await settle(100)
    const before = got.length
    failNext = true
    const lost = await insert('b')
    await settle(200)
    await insert('b')
    await settle(200)
    // Each poke either has no range (the client pulls) or a range that holds `lost`; at least one covers it.
    const after = got.slice(before)
    const covers = (p: { seq: number; range?: PokeRange }) =>
      p.seq >= lost && (p.range === undefined || p.range.prev < lost)
    expect(after.some(covers), JSON.stringify(after)).toBe(true)
  } finally {
    stop()
    notifier.stop()
  }
})

it('a range compaction trimmed before the notifier read it is not hidden: the subscribers get a plain poke for it', async () => {
  // Compaction no longer waits for a stale client; an entry every active client has pulled can be removed before the
  // notifier reads its range. The bucket read waits at a gate (before it runs) while compaction removes it.
  let gated = false
  let pending: (() => void) | undefined
  let reached: (() => void) | undefined
  const atGate = new Promise<void>((r) => {
    reached = r
  })
  const pool = {
    options: db.pool.options,
    query: async (text: string, values?: unknown[]) => {
      if (gated && text.includes('DISTINCT bucket_id')) {
        gated = false
        reached?.()
        await new Promise<void>((r) => {
          pending = r
        })
      }
      return db.pool.query(text, values)
    },
  } as unknown as pg.Pool
  const notifier = new ChangelogNotifier(pool, { listen: false, pollMs: 20, fallbackPollMs: 20 }, silent)
  const got: { seq: number; range?: PokeRange }[] = []
  await notifier.ready()
  const stop = notifier.subscribe(['trimmed'], (seq, range) => got.push({ seq, range }))
  try {
    await settle(100)
    gated = true
    const removed = await insert('trimmed') // a delete or move out of the subscriber's bucket, say
    await insert('elsewhere') // the rest of the range: another bucket
    await atGate
    // One compaction batch (compaction.ts): the entries up to `removed` and the boundary, in one statement.
    await db.pool.query(
      `WITH d AS (DELETE FROM sync_changelog WHERE seq <= $1 RETURNING seq)
       UPDATE sync_compaction_state SET max_compacted_seq = (SELECT max(seq) FROM d)`,
      [removed],
    )
    pending?.()
    await settle(200)
    // The subscriber heard of the range, without its buckets (a frame would stand for the removed entry).
    expect(
      got.some((p) => p.seq >= removed && p.range === undefined),
      JSON.stringify(got),
    ).toBe(true)
  } finally {
    gated = false
    pending?.()
    stop()
    notifier.stop()
  }
})
