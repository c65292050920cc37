/**
 * `synchrod migrate --apply` and `synchrod compact` draw progress on a terminal (a real pseudo-terminal from
 * util-linux `script`) and keep pipes clean.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { runMigrations } from '@synchro/server'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { BIN, cleanEnv, run } from '@synchro/test-harness/synchrod'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_SCHEMA_SQL } from './demo.js'

const exec = promisify(execFile)

let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase('synchrod_progress')
}, 60_000)

afterAll(async () => {
  await db?.drop()
})

/** Runs synchrod with its stdout and stderr on a pseudo-terminal; returns what the terminal showed. */
async function onTerminal(args: string[]): Promise<string> {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  const { stdout } = await exec('script', ['-qec', command, '/dev/null'], {
    env: cleanEnv({ DATABASE_URL: db.url }),
    timeout: 60_000,
  })
  return stdout
}

describe('progress on a terminal', () => {
  it('migrate --apply reports each statement; compact reports deleted entries batch by batch', async () => {
    const migrate = await onTerminal(['migrate', '--apply'])
    const total = /migrate: (\d+)\/(\d+)/.exec(migrate)?.[2]
    expect(Number(total)).toBeGreaterThan(5)
    expect(migrate).toContain(`migrate: 0/${total} CREATE TABLE IF NOT EXISTS sync_changelog`)
    expect(migrate).toContain(`migrate: ${total}/${total}`)
    expect(migrate).toContain('migrations applied to')

    await runMigrations(db.pool)
    await db.pool.query(DEMO_SCHEMA_SQL)
    await db.pool.query(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
       SELECT 'user:u', 'orders', g::text, 1 FROM generate_series(1, 25000) g`,
    )
    await db.pool.query(
      `INSERT INTO sync_clients (user_id, client_id, last_sync_at, last_pull_seq)
       SELECT 'u', 'c', now(), max(seq) FROM sync_changelog`,
    )
    const compact = await onTerminal(['compact', '--demo', '--compaction-batch-size', '10000'])
    for (const step of ['0 of 25000 changelog entries (0%)', '10000 of 25000', '20000 of 25000', '25000 of 25000']) {
      expect(compact).toContain(`compact: deleted ${step}`)
    }
    expect(compact).toContain('"deletedEntries":25000')
  }, 120_000)

  it('prints no progress when the output is not a terminal', async () => {
    const res = await run(['migrate', '--apply'], { env: { DATABASE_URL: db.url }, timeoutMs: 60_000 })
    expect(res.code, res.stderr).toBe(0)
    expect(res.stderr + res.stdout).not.toContain('migrate: ')
  }, 60_000)
})
