// Databases for the reliability suite, without vitest: tests pass the harness's root URL, the runner its own.
import { chmodSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createDatabaseOn, type TestDatabase } from '@synchro/test-harness/databases'
import pg from 'pg'
import { startEmbeddedPostgres } from 'synchrod/embedded'

export { withDatabase } from '@synchro/test-harness/databases'

export type RelDb = TestDatabase

/** A fresh database on the server at `root` (dropped with its replication slots by `drop`). */
export function createDb(root: string, prefix = 'rel'): Promise<RelDb> {
  return createDatabaseOn(root, prefix, 8)
}

/** Replication slots are per server: one per database (Decision 32). */
export function slotFor(db: { name: string }): string {
  return `rel_${db.name}`.slice(0, 63)
}

export interface OwnPostgres {
  url: string
  port: number
  dataDir: string
  stop(): Promise<void>
  start(): Promise<void>
  /** Removes the data folder (after stop). */
  remove(): Promise<void>
}

/** A private embedded PostgreSQL 17 (its own temp data folder) that can be stopped and started again. */
export async function ownPostgres(): Promise<OwnPostgres> {
  const base = mkdtempSync(path.join(tmpdir(), 'synchro-rel-pg-'))
  chmodSync(base, 0o777)
  const dataDir = path.join(base, 'data')
  let handle = await startEmbeddedPostgres({ dataDir, persistent: true })
  const port = handle.port
  return {
    url: handle.url,
    port,
    dataDir,
    async stop() {
      await handle.stop()
    },
    async start() {
      handle = await startEmbeddedPostgres({ dataDir, port, persistent: true })
    },
    async remove() {
      const { rm } = await import('node:fs/promises')
      await rm(base, { recursive: true, force: true })
    },
  }
}

/** The runner's PostgreSQL: SYNCHRO_TEST_DATABASE_URL, else the machine's on :5432 when it answers, else embedded. */
export async function runnerRoot(): Promise<{ url: string; version: string; stop(): Promise<void> }> {
  const candidates = [process.env.SYNCHRO_TEST_DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/postgres']
  for (const url of candidates) {
    if (!url) continue
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
    try {
      await c.connect()
      const { rows } = await c.query<{ w: string; v: string }>(
        `SELECT current_setting('wal_level') AS w, current_setting('server_version') AS v`,
      )
      if (rows[0]?.w === 'logical') return { url, version: rows[0].v, stop: async () => {} }
    } catch {
      // try the next one
    } finally {
      await c.end().catch(() => {})
    }
  }
  const own = await ownPostgres()
  return {
    url: own.url,
    version: '17 (embedded)',
    async stop() {
      await own.stop()
      await own.remove()
    },
  }
}
