import { statSync } from 'node:fs'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { cleanupTempDirs, tempDir } from '../../test/helpers.js'
import { openBetterSqlite3 } from '../drivers/better-sqlite3/index.js'
import { CATCH_UP_WAL_PAGES, DeferredCheckpoints } from './checkpoints.js'
import { LocalDatabase } from './database.js'

afterAll(cleanupTempDirs)

function open(): { db: LocalDatabase; file: string } {
  const file = path.join(tempDir(), 'wal.sqlite')
  return { db: new LocalDatabase(() => openBetterSqlite3(file)), file }
}

const threshold = async (db: LocalDatabase) =>
  (await db.run((ex) => ex.all<{ wal_autocheckpoint: number }>('PRAGMA wal_autocheckpoint')))[0]?.wal_autocheckpoint

/** Three transactions of ≈ 600 WAL pages each (1.8k pages: above SQLite's default threshold of 1 000). */
async function writeGroups(db: LocalDatabase): Promise<void> {
  await db.run((ex) => ex.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)'))
  for (let g = 0; g < 3; g++) {
    await db.transaction(async (tx) => {
      for (let i = 0; i < 600; i++) await tx.run('INSERT INTO t (v) VALUES (?)', ['x'.repeat(3500)])
    })
  }
}

const walPages = (file: string) => statSync(`${file}-wal`).size / 4096

describe('deferred WAL checkpoints', () => {
  it('without deferral SQLite checkpoints between the groups (the WAL restarts below their total)', async () => {
    const { db, file } = open()
    await writeGroups(db)
    expect(walPages(file)).toBeLessThan(1500)
    await db.close()
  })

  it('while deferred the groups accumulate in the WAL; finish restores the threshold and checkpoints once', async () => {
    const { db, file } = open()
    const checkpoints = new DeferredCheckpoints(db)
    await checkpoints.defer()
    expect(await threshold(db)).toBe(CATCH_UP_WAL_PAGES)
    await writeGroups(db)
    expect(walPages(file)).toBeGreaterThan(1800)
    await checkpoints.finish()
    expect(await threshold(db)).toBe(1000)
    // Everything was copied into the database file: a checkpoint now finds every WAL frame checkpointed already.
    const [state] = await db.run((ex) =>
      ex.all<{ log: number; checkpointed: number }>('PRAGMA wal_checkpoint(PASSIVE)'),
    )
    expect(state?.log).toBeGreaterThan(1800)
    expect(state?.checkpointed).toBe(state?.log)
    await db.close()
  })

  it("leaves an app's own setting alone: 0 (no automatic checkpoints) or a larger threshold", async () => {
    for (const own of [0, CATCH_UP_WAL_PAGES * 2]) {
      const { db } = open()
      await db.run((ex) => ex.all(`PRAGMA wal_autocheckpoint = ${own}`))
      const checkpoints = new DeferredCheckpoints(db)
      await checkpoints.defer()
      expect(await threshold(db)).toBe(own)
      await checkpoints.finish()
      expect(await threshold(db)).toBe(own)
      await db.close()
    }
  })

  it('finish after the database closed does nothing', async () => {
    const { db } = open()
    const checkpoints = new DeferredCheckpoints(db)
    await checkpoints.defer()
    await db.close()
    await expect(checkpoints.finish()).resolves.toBeUndefined()
  })
})
