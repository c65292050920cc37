import type { LocalDatabase } from './database.js'

/** WAL pages a catch-up may accumulate before SQLite checkpoints (≈ 40 MiB at the default 4 KiB page size). */
export const CATCH_UP_WAL_PAGES = 10_000

/**
 * WAL checkpoints of a catch-up, deferred to its end. In WAL mode SQLite copies the WAL's pages back into the
 * database file at the first commit after the WAL outgrew `wal_autocheckpoint` pages (1 000 by default). A catch-up
 * commits one transaction per group of rows, and each group of a large table rewrites most of that table's index
 * pages — so checkpointing after every group copies the same pages again and again: 100 000 rows in groups of 10 000
 * measured ≈ 25 % slower than in one transaction, the difference all in the commits' checkpoints. While a catch-up
 * with more than one group runs, the threshold is raised to `CATCH_UP_WAL_PAGES`; at its end the previous threshold
 * comes back and one passive checkpoint (the kind SQLite runs on its own: it never waits for readers or writers)
 * copies each page once.
 *
 * A threshold the app set to 0 (no automatic checkpoints) or above ours is left alone. Databases not in WAL mode
 * (sqlite-wasm on OPFS) accept both pragmas and do nothing.
 */
export class DeferredCheckpoints {
  private restore: number | null = null

  constructor(private readonly db: LocalDatabase) {}

  /** Raises the threshold until `finish` (the first call does it; later ones are no-ops). */
  async defer(): Promise<void> {
    if (this.restore !== null) return
    await this.db.run(async (ex) => {
      const rows = await ex.all<{ wal_autocheckpoint: number }>('PRAGMA wal_autocheckpoint')
      const current = Number(rows[0]?.wal_autocheckpoint)
      if (!(current > 0 && current < CATCH_UP_WAL_PAGES)) return
      await ex.all(`PRAGMA wal_autocheckpoint = ${CATCH_UP_WAL_PAGES}`)
      this.restore = current
    }, 'sync')
  }

  /** Puts the previous threshold back and checkpoints what the catch-up wrote (nothing when `defer` was not called). */
  async finish(): Promise<void> {
    const previous = this.restore
    if (previous === null) return
    this.restore = null
    if (this.db.isClosed) return // the setting belonged to the connection, gone with it
    await this.db.run(async (ex) => {
      await ex.all(`PRAGMA wal_autocheckpoint = ${previous}`)
      await ex.all('PRAGMA wal_checkpoint(PASSIVE)')
    }, 'sync')
  }
}

/** Runs a catch-up `fn` that may defer checkpoints (`defer`), finishing them however it ends. */
export async function withDeferredCheckpoints<T>(
  db: LocalDatabase,
  fn: (checkpoints: DeferredCheckpoints) => Promise<T>,
): Promise<T> {
  const checkpoints = new DeferredCheckpoints(db)
  try {
    return await fn(checkpoints)
  } finally {
    await checkpoints.finish()
  }
}
