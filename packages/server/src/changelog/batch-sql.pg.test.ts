import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { EdgeState } from '../buckets/edges.js'
import { runMigrations } from '../migrations/migrations.js'
import { beginBatch, commitBatch, writeBatch } from './batch-sql.js'
import { CHANGELOG_CHANNEL, parsePoke } from './listener.js'
import { BatchOutput } from './output.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
  await runMigrations(db.pool)
})
afterAll(async () => {
  await db.drop()
})

it('a batch opened, written and committed in its few round trips stores the position and notifies its buckets', async () => {
  const listener = new pg.Client({ connectionString: db.url })
  await listener.connect()
  const payloads: string[] = []
  listener.on('notification', (n) => payloads.push(n.payload ?? ''))
  await listener.query(`LISTEN ${CHANGELOG_CHANNEL}`)
  const client = await db.pool.connect()
  try {
    // Bucket ids with quotes and backslashes travel as SQL literals now.
    const buckets = [`o'k`, 'back\\slash', 'q"uote']
    const out = new BatchOutput()
    for (const b of buckets) out.emit(b, 't', '1', 1)
    expect(await beginBatch(client, 'slot_a')).toBe(0n)
    await writeBatch(client, out, new EdgeState(), true)
    await commitBatch(client, 'slot_a', 42n, out.buckets)
    // The position only increases; a batch without changelog rows sends no notification.
    expect(await beginBatch(client, 'slot_a')).toBe(42n)
    await commitBatch(client, 'slot_a', 7n, undefined)
    expect(await beginBatch(client, 'slot_a')).toBe(42n)
    await client.query('ROLLBACK')
    const { rows } = await client.query('SELECT max(seq)::int AS head FROM sync_changelog')
    await expect.poll(() => payloads.length).toBe(1)
    const poke = parsePoke(payloads[0])
    expect(poke?.seq).toBe(rows[0].head)
    expect([...(poke?.buckets ?? [])]).toEqual(buckets)
  } finally {
    client.release()
    await listener.end()
  }
})
