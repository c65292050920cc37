// 11. Library users are told what is wrong: with no logger given, `startWalConsumer` and `createEngine` report a
// database that cannot capture changes at error level (console.error, the default logger), each with the fix, instead
// of pulls silently returning nothing. Cases: wal_level=replica (a private embedded PostgreSQL), a role without the
// REPLICATION attribute, and a publication the role may not change.
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createEngine, Registry, runMigrations, startWalConsumer, type WalConsumer } from '@synchro/server'
import pg from 'pg'
import { startEmbeddedPostgres } from 'synchrod/embedded'
import { createDb } from '../lib/db.js'
import { poll } from '../lib/util.js'

export interface LibrarySetupReport {
  cases: Array<{ case: string; reported: boolean; message: string }>
  violations: string[]
}

const TABLE_SQL = `CREATE TABLE IF NOT EXISTS notes (id uuid PRIMARY KEY, user_id text, body text,
  updated_at timestamptz NOT NULL DEFAULT now(), deleted_at timestamptz)`

function registry(): Registry {
  return new Registry().register({ tableName: 'notes', ownerColumn: 'user_id' })
}

/** Runs `fn` with console.error captured; resolves once a captured line matches `want` (or after 20 s). */
async function reported(want: RegExp, fn: () => Promise<() => Promise<void>>): Promise<string | undefined> {
  const lines: string[] = []
  const original = console.error
  console.error = (...args: unknown[]) => lines.push(args.map(String).join(' '))
  let stop: (() => Promise<void>) | undefined
  try {
    stop = await fn()
    return await poll(() => lines.find((l) => want.test(l)), 20_000, `console.error matching ${want}`).catch(
      () => undefined,
    )
  } finally {
    await stop?.()
    console.error = original
  }
}

export async function runLibrarySetup(o: { root: string }): Promise<LibrarySetupReport> {
  const violations: string[] = []
  const cases: LibrarySetupReport['cases'] = []
  const record = (name: string, line: string | undefined) => {
    cases.push({ case: name, reported: line !== undefined, message: (line ?? '').slice(0, 300) })
    if (!line) violations.push(`${name}: nothing reported at error level with the fix`)
  }

  // 1. wal_level=replica.
  const base = mkdtempSync(path.join(tmpdir(), 'synchro-rel-replica-'))
  chmodSync(base, 0o777)
  const replica = await startEmbeddedPostgres({
    dataDir: path.join(base, 'data'),
    persistent: false,
    settings: ['wal_level=replica'],
  })
  try {
    const pool = new pg.Pool({ connectionString: replica.url, max: 4 })
    await pool.query(TABLE_SQL)
    await runMigrations(pool)
    const fix = /wal_level.*ALTER SYSTEM SET wal_level = logical/
    record(
      'startWalConsumer, wal_level=replica',
      await reported(fix, async () => {
        const c = startWalConsumer({ pool, registry: registry(), replicationUrl: replica.url })
        return () => c.stop()
      }),
    )
    record(
      'createEngine, wal_level=replica',
      await reported(fix, async () => {
        const engine = await createEngine({ pool, registry: registry() })
        return () => engine.close()
      }),
    )
    await pool.end()
  } finally {
    await replica.stop()
    rmSync(base, { recursive: true, force: true })
  }

  // 2. and 3. On the logical server: a role that may not replicate, then one that may not change the publication.
  const db = await createDb(o.root, 'rel_libsetup')
  const role = `rel_app_${randomBytes(4).toString('hex')}`
  const password = randomBytes(12).toString('hex')
  const asRole = new URL(db.url)
  asRole.username = role
  asRole.password = password
  try {
    await db.pool.query(TABLE_SQL)
    await runMigrations(db.pool)
    await db.pool.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`)
    await db.pool.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}`)
    const start = async (slotName: string): Promise<() => Promise<void>> => {
      const pool = new pg.Pool({ connectionString: asRole.toString(), max: 4 })
      const c: WalConsumer = startWalConsumer({
        pool,
        registry: registry(),
        replicationUrl: asRole.toString(),
        slotName,
      })
      return async () => {
        await c.stop()
        await pool.end()
      }
    }
    record(
      'startWalConsumer, role without REPLICATION',
      await reported(/may not replicate\. Fix: `ALTER ROLE "rel_app_\w+" REPLICATION;`/, () => start(`${db.name}_a`)),
    )
    await db.pool.query(`ALTER ROLE ${role} REPLICATION`)
    await db.pool.query('CREATE TABLE other (id int PRIMARY KEY); CREATE PUBLICATION synchro_pub FOR TABLE other')
    record(
      'startWalConsumer, publication owned by another role',
      await reported(/publication synchro_pub.*Fix: run as its owner: ALTER PUBLICATION/, () => start(`${db.name}_b`)),
    )
  } finally {
    await db.drop()
    const admin = new pg.Client({ connectionString: o.root })
    await admin.connect()
    await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {})
    await admin.end()
  }
  return { cases, violations }
}
