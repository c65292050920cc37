// Databases for the reliability suite, without vitest: tests pass the harness's root URL, the runner its own.
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { startEmbeddedPostgres } from '../../../packages/synchrod/src/embedded.js'

export interface RelDb {
  url: string
  name: string
  pool: pg.Pool
  drop(): Promise<void>
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

/** A fresh database on the server at `root` (dropped with its replication slots by `drop`). */
export async function createDb(root: string, prefix = 'rel'): Promise<RelDb> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`
  const admin = new pg.Client({ connectionString: root })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE "${name}" TEMPLATE template0`)
  } finally {
    await admin.end()
  }
  const url = withDatabase(root, name)
  const pool = new pg.Pool({ connectionString: url, max: 8 })
  pool.on('error', () => {})
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end().catch(() => {})
      const c = new pg.Client({ connectionString: root })
      await c.connect()
      try {
        for (let i = 0; i < 50; i++) {
          await c.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
            [name],
          )
          const { rows } = await c.query<{ slot_name: string }>(
            'SELECT slot_name FROM pg_replication_slots WHERE database = $1',
            [name],
          )
          if (rows.length === 0) break
          for (const r of rows) await c.query('SELECT pg_drop_replication_slot($1)', [r.slot_name]).catch(() => {})
          await new Promise((r) => setTimeout(r, 100))
        }
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
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
