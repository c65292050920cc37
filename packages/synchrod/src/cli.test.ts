import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { INFRASTRUCTURE_SQL } from '@synchro/server/internal'
import { run } from '@synchro/test-harness/synchrod'
import { decodeJwt, jwtVerify } from 'jose'
import { beforeAll, describe, expect, it } from 'vitest'

// These spawn the real launcher (bin/synchrod.js) and check exit codes and messages; no database needed.

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'synchrod-cli-'))
})

async function config(name: string, body: unknown): Promise<string> {
  const file = path.join(dir, name)
  await writeFile(file, typeof body === 'string' ? body : JSON.stringify(body))
  return file
}

describe('synchrod CLI (spawned binary)', () => {
  // 16 processes at once: generous, a busy 2-core machine takes a while to start them all.
  it('rejects bad configurations with a non-zero exit and a message naming the problem', {
    timeout: 180_000,
  }, async () => {
    const table = { tableName: 'orders', ownerColumn: 'user_id' }
    const cases: Array<{ args?: string[]; env?: Record<string, string>; file?: unknown; expect: RegExp }> = [
      {
        file: { tables: [table], conflictResolver: 'newest' },
        expect: /conflictResolver: must be one of lww, server_wins; got "newest"/,
      },
      { file: { tables: [{ ownerColumn: 'user_id' }] }, expect: /tables\[0\]\.tableName is required/ },
      { file: { tables: [table], conflictResolvr: 'lww' }, expect: /unknown field "conflictResolvr"/ },
      { file: '{ "tables": [', expect: /invalid JSON/ },
      {
        file: { tables: [{ tableName: 'a', pushPolicy: 'sometimes', ownerColumn: 'u' }] },
        expect: /table "a".*push policy/i,
      },
      {
        file: { tables: [table] },
        env: { LISTEN_ADDR: 'localhost' },
        expect: /LISTEN_ADDR: invalid address "localhost"/,
      },
      {
        file: { tables: [table] },
        env: { DATABASE_URL: 'postgres://synchro:pw@127.0.0.1:1/app' },
        expect: /cannot connect to DATABASE_URL \(127\.0\.0\.1:1\/app\): connection refused/,
      },
      {
        file: { tables: [table] },
        env: { DATABASE_URL: 'mysql://x@y/z' },
        expect: /DATABASE_URL: expected a postgres:\/\/ URL/,
      },
      {
        file: { tables: [table] },
        env: { JWKS_URL: 'http://127.0.0.1:1/.well-known/jwks.json' },
        expect: /JWKS_URL http:\/\/127\.0\.0\.1:1\/\.well-known\/jwks\.json: cannot load the key set/,
      },
      { file: { tables: [table] }, env: { JWT_SECRET: 's'.repeat(32), JWKS_URL: 'http://x' }, expect: /set only one/ },
      {
        file: { tables: [table], wal: { logicalDecodingWorkMem: 'lots' } },
        expect: /wal\.logicalDecodingWorkMem: expected a value like 64MB, got "lots"/,
      },
      { file: { tables: [table], wal: { spill: '/tmp' } }, expect: /unknown field "wal\.spill" \(allowed: streaming/ },
      {
        file: { tables: [table] },
        env: { WAL_SPILL_DIR: path.join(tmpdir(), 'no-such-spill-dir') },
        expect: /--wal-spill-dir \(WAL_SPILL_DIR\) .*no-such-spill-dir: not a writable directory/,
      },
      {
        file: { tables: [table] },
        env: { REPLICATION_URL: 'postgres://x@127.0.0.1:1/app' },
        expect: /REPLICATION_URL is set but DATABASE_URL is not: set both, to the same database/,
      },
      { args: ['--listen'], expect: /--listen needs a value/ },
      { args: ['--no-such-flag'], expect: /unknown flag --no-such-flag/ },
      { args: ['--config', path.join(tmpdir(), 'does-not-exist.json')], expect: /cannot read it \(ENOENT\)/ },
      { env: { SYNCHRO_CONFIG: '' }, expect: /no tables to sync/ },
    ]
    const results = await Promise.all(
      cases.map(async (c, i) => {
        const args = [...(c.args ?? [])]
        if (c.file !== undefined) args.push('--config', await config(`bad-${i}.json`, c.file))
        return run(args, { env: c.env, cwd: dir, timeoutMs: 120_000 })
      }),
    )
    results.forEach((r, i) => {
      const c = cases[i] as (typeof cases)[number]
      expect(r.code, `case ${i}: ${r.stderr}`).not.toBe(0)
      expect(r.stderr, `case ${i}`).toMatch(c.expect)
      // Secrets in connection strings never reach the output.
      expect(r.stdout + r.stderr).not.toContain(':pw@')
    })
  })

  it('token mints an HS256 JWT with sub and the requested lifetime', async () => {
    const secret = 'test-secret-0123456789abcdef-0123456789'
    const r = await run(['token', '--sub', 'A1B2', '--ttl', '2h'], { env: { JWT_SECRET: secret } })
    expect(r.code, r.stderr).toBe(0)
    const jwt = r.stdout.trim()
    const { payload, protectedHeader } = await jwtVerify(jwt, new TextEncoder().encode(secret))
    expect(protectedHeader.alg).toBe('HS256')
    expect(payload.sub).toBe('A1B2')
    expect((payload.exp as number) - (payload.iat as number)).toBe(7200)

    const noSecret = await run(['token', '--sub', 'x'])
    expect(noSecret.code).not.toBe(0)
    expect(noSecret.stderr).toMatch(/JWT_SECRET is required/)
    const claim = await run(['token', '--sub', 'u1'], { env: { JWT_SECRET: secret, JWT_USER_CLAIM: 'uid' } })
    expect(decodeJwt(claim.stdout.trim()).uid).toBe('u1')
  })

  it('migrate prints the infrastructure SQL; rls prints idempotent policies for the configured tables', async () => {
    const notes = await config('rls.json', { tables: [{ tableName: 'notes', ownerColumn: 'owner_id' }] })
    const [migrate, migrateTables, rls, help] = await Promise.all([
      run(['migrate']),
      run(['migrate', '--config', notes]),
      run(['rls', '--config', notes]),
      run(['status', '--help']),
    ])
    expect(migrate.code).toBe(0)
    expect(migrate.stdout.startsWith(INFRASTRUCTURE_SQL.trim())).toBe(true)
    // The DDL watch follows, for a superuser to run (the daemon installs it itself when it can).
    expect(migrate.stdout).toContain('CREATE EVENT TRIGGER "sync_ddl_epoch" ON ddl_command_end')
    expect(migrateTables.code, migrateTables.stderr).toBe(0)
    expect(migrateTables.stdout.startsWith(INFRASTRUCTURE_SQL.trim())).toBe(true)
    expect(migrateTables.stdout).toContain(
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS "sync_notes_owner_id_id" ON "notes" ("owner_id", "id");',
    )
    expect(rls.code, rls.stderr).toBe(0)
    expect(rls.stdout).toContain('ALTER TABLE "notes" ENABLE ROW LEVEL SECURITY;')
    expect(rls.stdout).toContain('DROP POLICY IF EXISTS "sync_read_notes" ON "notes";')
    expect(help.code).toBe(0)
    expect(help.stdout).toContain('--json')
    expect(help.stdout).toContain('SLOT_NAME')
  })
})
