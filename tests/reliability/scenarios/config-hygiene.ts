// 7. Configuration hygiene: misconfiguration fails closed and loud. Authentication options that are set but blank,
// or a JWT secret too short for HS256, stop the binary at startup with a message naming the option (never falling
// back to trusting X-User-ID); header mode only without any auth option or with the explicit dev flag; flags work
// before the command as after it.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { run, startDaemon } from '@synchro/test-harness/synchrod'
import { decodeJwt } from 'jose'
import { stopGracefully } from '../lib/daemon.js'
import { createDb, slotFor } from '../lib/db.js'
import { call } from '../lib/http.js'

export interface ConfigHygieneReport {
  refusals: { cases: number; refused: number }
  starts: { cases: number; started: number }
  cli: { cases: number; ok: number }
  violations: string[]
}

/** 40 bytes: long enough for HS256. Never printed by the daemon (checked below). */
const GOOD_SECRET = 'config-hygiene-secret-0123456789abcdefgh'

interface Refusal {
  what: string
  args: string[]
  env?: Record<string, string>
  expect: RegExp
}

export async function runConfigHygiene(o: { root: string }): Promise<ConfigHygieneReport> {
  const violations: string[] = []
  const dir = mkdtempSync(path.join(tmpdir(), 'synchro-rel-config-'))
  const config = path.join(dir, 'northwind.config.json')
  writeFileSync(config, JSON.stringify({ tables: NORTHWIND_TABLES }))
  const db = await createDb(o.root, 'rel_cfg')
  await db.pool.query(NORTHWIND_SQL)
  const base = { DATABASE_URL: db.url, SLOT_NAME: slotFor(db), LISTEN_ADDR: '127.0.0.1:0' }
  const serve = ['serve', '--config', config]
  const refusals: Refusal[] = [
    { what: 'empty JWT_SECRET', args: serve, env: { JWT_SECRET: '' }, expect: /JWT_SECRET is set but empty/ },
    { what: 'blank JWT_SECRET', args: serve, env: { JWT_SECRET: ' \t ' }, expect: /JWT_SECRET is set but empty/ },
    {
      what: 'empty --jwt-secret overriding a good JWT_SECRET',
      args: [...serve, '--jwt-secret='],
      env: { JWT_SECRET: GOOD_SECRET },
      expect: /--jwt-secret is set but empty/,
    },
    {
      what: 'blank --jwt-secret value',
      args: [...serve, '--jwt-secret', '   '],
      env: { JWT_SECRET: GOOD_SECRET },
      expect: /--jwt-secret is set but empty/,
    },
    { what: 'empty JWKS_URL', args: serve, env: { JWKS_URL: '' }, expect: /JWKS_URL is set but empty/ },
    { what: 'empty DATABASE_URL', args: serve, env: { DATABASE_URL: ' ' }, expect: /DATABASE_URL is set but empty/ },
    { what: 'empty --jwks-url', args: [...serve, '--jwks-url='], expect: /--jwks-url is set but empty/ },
    { what: '1-byte secret', args: serve, env: { JWT_SECRET: 'x' }, expect: /JWT_SECRET is too short \(1 bytes\)/ },
    {
      what: '31-byte secret',
      args: serve,
      env: { JWT_SECRET: 'a'.repeat(31) },
      expect: /JWT_SECRET is too short \(31 bytes\).*32/,
    },
    {
      what: '--dev-header-auth together with JWT_SECRET',
      args: [...serve, '--dev-header-auth'],
      env: { JWT_SECRET: GOOD_SECRET },
      expect: /--dev-header-auth .*JWT_SECRET is set too/,
    },
    {
      what: 'SYNCHRO_DEV_HEADER_AUTH=false without any auth',
      args: serve,
      env: { SYNCHRO_DEV_HEADER_AUTH: 'false' },
      expect: /requires authentication, but neither JWT_SECRET nor JWKS_URL is set/,
    },
    {
      what: 'token with a short secret',
      args: ['token', '--sub', 'u1'],
      env: { JWT_SECRET: 'dev-secret' },
      expect: /too short/,
    },
    { what: 'stray word after the command', args: ['--demo', 'rls', 'extra'], expect: /unexpected argument "extra"/ },
    { what: 'flag of another command before it', args: ['--apply', 'token'], expect: /--apply does not apply/ },
  ]
  let refused = 0
  const results = await Promise.all(
    refusals.map((c) => run(c.args, { env: { ...base, ...c.env }, cwd: dir, timeoutMs: 60_000 })),
  )
  results.forEach((r, i) => {
    const c = refusals[i] as Refusal
    const out = r.stdout + r.stderr
    if (r.code === 0 || /listening on/.test(out)) violations.push(`${c.what}: started (exit ${r.code})`)
    else if (!c.expect.test(r.stderr)) violations.push(`${c.what}: message ${JSON.stringify(r.stderr.slice(0, 300))}`)
    else refused++
    if (out.includes(GOOD_SECRET)) violations.push(`${c.what}: the secret was printed`)
  })

  // Modes that must start, and what they accept.
  const token = await run(['--sub', 'u1', '--ttl', '2h', 'token'], { env: { JWT_SECRET: GOOD_SECRET } })
  const jwt = token.stdout.trim()
  let cliOk = 0
  if (token.code === 0 && decodeJwt(jwt).sub === 'u1') cliOk++
  else violations.push(`flags before "token": exit ${token.code} ${token.stderr.slice(0, 200)}`)
  const starts: Array<{ what: string; args: string[]; env?: Record<string, string>; header: number; bearer: number }> =
    [
      { what: 'no auth option (dev header mode)', args: serve, header: 200, bearer: 401 },
      { what: 'explicit --dev-header-auth', args: ['--dev-header-auth', ...serve], header: 200, bearer: 401 },
      // Flags with values before the command.
      {
        what: 'JWT_SECRET',
        args: ['--config', config, '--listen', '127.0.0.1:0', 'serve'],
        env: { JWT_SECRET: GOOD_SECRET },
        header: 401,
        bearer: 200,
      },
    ]
  let started = 0
  for (const s of starts) {
    let d: Awaited<ReturnType<typeof startDaemon>> | undefined
    try {
      d = await startDaemon(s.args, { env: { ...base, LOG_LEVEL: 'warn', ...s.env }, cwd: dir, timeoutMs: 60_000 })
      const header = await call(d.url, 'GET', '/sync/tables', { user: 'u1' })
      const bearer = await call(d.url, 'GET', '/sync/tables', { headers: { authorization: `Bearer ${jwt}` } })
      if (header.status !== s.header || bearer.status !== s.bearer) {
        violations.push(
          `${s.what}: X-User-ID → ${header.status} (want ${s.header}), Bearer → ${bearer.status} (want ${s.bearer})`,
        )
      } else started++
      const warned = /AUTHENTICATION IS OFF/.test(d.output())
      if (warned !== (s.header === 200))
        violations.push(`${s.what}: header-mode warning ${warned ? 'shown' : 'missing'}`)
    } catch (err) {
      violations.push(`${s.what}: did not start: ${String(err).slice(0, 300)}`)
    } finally {
      if (d) await stopGracefully(d)
    }
  }

  // The CLI accepts flags before the command as after it.
  const [before, after, status] = await Promise.all([
    run(['--demo', 'rls']),
    run(['rls', '--demo']),
    run(['--json', '--config', config, 'status'], { env: base, cwd: dir, timeoutMs: 60_000 }),
  ])
  if (before.code === 0 && before.stdout === after.stdout && /ENABLE ROW LEVEL SECURITY/.test(before.stdout)) cliOk++
  else violations.push(`"synchrod --demo rls": exit ${before.code} ${before.stderr.slice(0, 200)}`)
  try {
    JSON.parse(status.stdout)
    if (status.code === 0) cliOk++
    else violations.push(`"synchrod --json --config f status": exit ${status.code}`)
  } catch {
    violations.push(`"synchrod --json --config f status": not JSON: ${(status.stdout + status.stderr).slice(0, 200)}`)
  }
  await db.drop()
  return {
    refusals: { cases: refusals.length, refused },
    starts: { cases: starts.length, started },
    cli: { cases: 3, ok: cliOk },
    violations,
  }
}
