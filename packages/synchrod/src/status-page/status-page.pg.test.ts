/**
 * The daemon's status page and `--web`, as users run them: bin/synchrod.js in a child process over real HTTP and
 * PostgreSQL. The page's numbers come from the same function as `synchrod status --json`.
 */
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { type Daemon, poll, run, startDaemon } from '@synchro/test-harness/synchrod'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

let db: TestDatabase
let cwd: string
const daemons: Daemon[] = []

beforeAll(async () => {
  db = await createTestDatabase('synchrod_status')
  cwd = await mkdtemp(path.join(tmpdir(), 'synchrod-status-'))
})
afterEach(async () => {
  for (const d of daemons.splice(0)) {
    d.kill()
    await d.exited
  }
})
afterAll(async () => {
  await db?.drop()
  await rm(cwd, { recursive: true, force: true })
})

const env = () => ({ DATABASE_URL: db.url, SLOT_NAME: db.name, LISTEN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'warn' })

async function serve(extra: Record<string, string> = {}, args: string[] = []): Promise<Daemon> {
  const d = await startDaemon(['serve', '--demo', ...args], { cwd, env: { ...env(), ...extra } })
  daemons.push(d)
  return d
}

async function register(base: string, user: string, platform: string, appVersion: string): Promise<string> {
  const clientId = randomUUID()
  const res = await fetch(`${base}/sync/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-user-id': user },
    body: JSON.stringify({
      client_id: clientId,
      platform,
      app_version: appVersion,
      schema_version: 0,
      schema_hash: '',
    }),
  })
  expect(res.status).toBe(200)
  return clientId
}

describe('status page', () => {
  it('serves the report of `synchrod status --json` plus request stats and live streams (dev mode)', async () => {
    const d = await serve()
    const user = randomUUID()
    const web = await register(d.url, user, 'web', '1.2.0')
    await register(d.url, user, 'ios', '1.1.0')
    await register(d.url, randomUUID(), 'web', '1.2.0')

    const page = await fetch(`${d.url}/status`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await page.text()).toContain('/status.json')

    // A live stream open → counted; closed → not.
    const ac = new AbortController()
    const events = await fetch(`${d.url}/sync/events?client_id=${web}`, {
      headers: { 'x-user-id': user },
      signal: ac.signal,
    })
    expect(events.status).toBe(200)
    const snap = async () => (await (await fetch(`${d.url}/status.json`)).json()) as any
    expect((await snap()).process.liveStreams).toBe(1)
    ac.abort()
    await poll(async () => (await snap()).process.liveStreams === 0)

    const s = await snap()
    const cli = await run(['status', '--json'], { env: { DATABASE_URL: db.url, SLOT_NAME: db.name }, cwd })
    expect(cli.code, cli.stderr).toBe(0)
    const report = JSON.parse(cli.stdout)
    expect(s.report.clients).toEqual(report.clients)
    expect(s.report.clients).toMatchObject({ total: 3, active: 3, stale: 0, inactive: 0 })
    expect(s.report.clients.groups).toEqual([
      { platform: 'web', appVersion: '1.2.0', total: 2, active: 2 },
      { platform: 'ios', appVersion: '1.1.0', total: 1, active: 1 },
    ])
    expect(s.report.ruleFailures).toEqual(report.ruleFailures)
    expect(s.report.changelog.maxCompactedSeq).toBe(report.changelog.maxCompactedSeq)
    expect(s.report.slot).toMatchObject({ name: db.name, exists: true, active: true })
    expect(s.report.consumer.leader.pid).toBe(report.consumer.leader.pid)
    expect(s.report.database).toBe(report.database)
    const reg = s.process.routes.find((r: { route: string }) => r.route === '/sync/register')
    expect(reg).toMatchObject({ total: 3, errors: 0 })
    expect(reg.p50Ms).toBeGreaterThan(0)
    expect(s.process.consumer).toMatchObject({ leader: true })
  })

  it('with ADMIN_TOKEN: only callers presenting it (header or ?token=)', async () => {
    // Info level: the access log lines are printed, and must not carry the token.
    const d = await serve({ ADMIN_TOKEN: 'adm-secret-123', LOG_LEVEL: 'info' })
    expect((await fetch(`${d.url}/status`)).status).toBe(401)
    expect((await fetch(`${d.url}/status.json`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401)
    expect((await fetch(`${d.url}/status.json?token=adm-secret-12`)).status).toBe(401)
    expect((await fetch(`${d.url}/status.json`, { headers: { authorization: 'Bearer adm-secret-123' } })).status).toBe(
      200,
    )
    expect((await fetch(`${d.url}/status?token=adm-secret-123`)).status).toBe(200)
    expect(d.output()).toContain('"route":"/status"')
    expect(d.output()).not.toContain('adm-secret-123')
  })

  it('with JWT auth and no ADMIN_TOKEN the page is off (and a web app is told to ask for a token)', async () => {
    const dir = await mkdtemp(path.join(cwd, 'web-jwt-'))
    await writeFile(path.join(dir, 'index.html'), '<!doctype html>')
    const d = await serve({ JWT_SECRET: 'a-long-enough-jwt-secret-for-hs256-0123456789' }, ['--web', dir])
    const res = await fetch(`${d.url}/status.json`)
    expect(res.status).toBe(403)
    expect((await res.json()).error).toMatch(/ADMIN_TOKEN/)
    expect(await (await fetch(`${d.url}/web-config.json`)).json()).toEqual({ auth: 'jwt' })
  })
})

describe('--web', () => {
  it('serves the folder only when given, never over /sync/*', async () => {
    const plain = await serve()
    expect((await fetch(`${plain.url}/`)).status).toBe(404)
    expect((await fetch(`${plain.url}/web-config.json`)).status).toBe(404)
    plain.kill()
    await plain.exited

    const dir = await mkdtemp(path.join(cwd, 'web-'))
    await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>demo</title>')
    await writeFile(path.join(dir, 'app.js'), 'console.log(1)')
    const d = await serve({}, ['--web', dir])
    const index = await fetch(`${d.url}/`)
    expect(index.status).toBe(200)
    expect(await index.text()).toContain('<title>demo</title>')
    const js = await fetch(`${d.url}/app.js`)
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/)
    expect(await (await fetch(`${d.url}/web-config.json`)).json()).toEqual({ auth: 'header' })
    expect((await fetch(`${d.url}/../../etc/passwd`)).status).toBe(404)
    expect((await fetch(`${d.url}/nope.js`)).status).toBe(404)
    expect((await fetch(`${d.url}/sync/tables`, { headers: { 'x-user-id': randomUUID() } })).status).toBe(200)
  })

  it('a folder without index.html is a startup error', async () => {
    const dir = await mkdtemp(path.join(cwd, 'empty-'))
    const r = await run(['serve', '--demo', '--web', dir], { cwd, env: env() })
    expect(r.code).not.toBe(0)
    expect(r.stdout + r.stderr).toMatch(/no index\.html/)
  })
})
