/** The changelog's reader helpers and `changelogStats` on a real database (the numbers synchrod's metrics and status show). */
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runMigrations } from '../migrations/migrations.js'
import { bucketsBetween, headSeq } from './reader.js'
import { changelogInstalled, changelogStats } from './stats.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase('synchro_changelog')
})
afterAll(async () => {
  await db?.drop()
})

/** Appends one entry per bucket; returns their seqs. */
async function append(buckets: string[]): Promise<number[]> {
  const { rows } = await db.pool.query<{ seq: string }>(
    `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
     SELECT b, 'orders', gen_random_uuid()::text, 1 FROM unnest($1::text[]) AS b RETURNING seq::text`,
    [buckets],
  )
  return rows.map((r) => Number(r.seq)).sort((a, b) => a - b)
}

describe('changelog stats', () => {
  it('before the migrations: not installed, and stats fail rather than report zeros', async () => {
    expect(await changelogInstalled(db.pool)).toBe(false)
    await expect(changelogStats(db.pool)).rejects.toThrow(/sync_changelog/)
  })

  it('an empty changelog: no seqs, boundary 0, exact count 0', async () => {
    await runMigrations(db.pool)
    expect(await changelogInstalled(db.pool)).toBe(true)
    const s = await changelogStats(db.pool)
    expect(s).toMatchObject({ entries: 0, estimated: false, minSeq: null, headSeq: null, compactedSeq: 0 })
    expect(s.sizeBytes).toBeGreaterThan(0)
    expect(await headSeq(db.pool)).toBe(0)
  })

  it('entries, head, lowest seq and the compaction boundary', async () => {
    const seqs = await append(['a', 'b', 'a', 'c', 'b'])
    await db.pool.query(`DELETE FROM sync_changelog WHERE seq = $1`, [seqs[0]])
    await db.pool.query(`UPDATE sync_compaction_state SET max_compacted_seq = $1`, [seqs[0]])
    const s = await changelogStats(db.pool)
    expect(s).toMatchObject({
      entries: 4,
      estimated: false,
      minSeq: seqs[1],
      headSeq: seqs[4],
      compactedSeq: seqs[0],
    })
    expect(await headSeq(db.pool)).toBe(seqs[4])
    // The buckets of (after, upTo]: what the live-event notifier pokes.
    expect(await bucketsBetween(db.pool, seqs[1] as number, seqs[3] as number)).toEqual(new Set(['a', 'c']))
    expect(await bucketsBetween(db.pool, seqs[4] as number, seqs[4] as number)).toEqual(new Set())
  })

  it('exactBelow: the planner estimate once the table is estimated at or above it', async () => {
    await append(Array.from({ length: 96 }, (_, i) => `bulk${i % 7}`))
    await db.pool.query('ANALYZE sync_changelog')
    const exact = await changelogStats(db.pool, { exactBelow: 1_000 })
    expect(exact).toMatchObject({ entries: 100, estimated: false })
    // Rows the estimate does not know about yet: the estimated count stays at what ANALYZE saw.
    await append(['late', 'late'])
    const estimated = await changelogStats(db.pool, { exactBelow: 50 })
    expect(estimated).toMatchObject({ entries: 100, estimated: true })
    expect(await changelogStats(db.pool)).toMatchObject({ entries: 102, estimated: false })
  })
})
