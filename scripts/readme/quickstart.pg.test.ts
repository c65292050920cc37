import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { SignJWT } from 'jose'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { extractQuickStart, type Program, ROOT, startProgram, waitForOutput } from './quickstart.js'

// The README's quick starts, verbatim, as users run them: node on the file, real PostgreSQL, real HTTP.

const SECRET = 'readme-quickstart-secret-of-32-bytes!'
const programs: Program[] = []
const databases: TestDatabase[] = []
const dirs: string[] = []

afterEach(() => {
  for (const p of programs.splice(0)) if (p.proc.exitCode === null) p.proc.kill('SIGKILL')
})
afterAll(async () => {
  for (const db of databases.splice(0)) await db.drop()
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
})

/** A scratch directory inside the checkout, so the program resolves the workspace packages like an app would. */
async function scratch(): Promise<string> {
  const dir = await mkdtemp(join(ROOT, 'node_modules', '.readme-'))
  dirs.push(dir)
  return dir
}

async function freshDb(): Promise<TestDatabase> {
  const db = await createTestDatabase('readme_t')
  databases.push(db)
  return db
}

/** Waits until the WAL consumer streams from its slot: only writes after that are captured. */
async function captureStreaming(db: TestDatabase, slot: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const { rowCount } = await db.pool.query(
      `SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
        WHERE s.slot_name = $1 AND r.state = 'streaming'`,
      [slot],
    )
    if (rowCount) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`slot ${slot} never streamed`)
}

async function run(file: string, code: string, env: { [name: string]: string }): Promise<Program> {
  const dir = await scratch()
  await writeFile(join(dir, file), code)
  const p = startProgram(join(dir, file), env, dir)
  programs.push(p)
  return p
}

describe('README quick starts', () => {
  it('the library quick start is a server: register, push and a captured pull over HTTP', async () => {
    const snippet = extractQuickStart('Quick start (library)')
    expect(snippet.lang).toBe('js')
    const db = await freshDb()
    const slot = `s_${db.name}`.slice(0, 63)
    const server = await run('server.mjs', snippet.code, {
      DATABASE_URL: db.url,
      JWT_SECRET: SECRET,
      PORT: '0',
      SLOT_NAME: slot,
    })
    const base = (await waitForOutput(server, /listening on (http:\/\/\S+)/))[1]?.replace('localhost', '127.0.0.1')
    await captureStreaming(db, slot)

    const user = randomUUID()
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(SECRET))
    const call = async (route: string, body: object) => {
      const res = await fetch(`${base}${route}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      return { status: res.status, body: (await res.json()) as { [k: string]: any } }
    }
    const reg = await call('/sync/register', {
      client_id: 'readme-1',
      platform: 'test',
      app_version: '1.0.0',
      schema_version: 0,
      schema_hash: '',
    })
    expect(reg.status).toBe(200)
    const pair = { schema_version: reg.body.schema_version, schema_hash: reg.body.schema_hash }
    const snap = await call('/sync/snapshot', { client_id: 'readme-1', ...pair })
    expect(snap.status).toBe(200)

    const workout = randomUUID()
    const push = await call('/sync/push', {
      client_id: 'readme-1',
      ...pair,
      changes: [
        {
          id: workout,
          table_name: 'workouts',
          operation: 'create',
          data: { name: 'legs' },
          client_updated_at: new Date().toISOString(),
        },
      ],
    })
    expect(push.status).toBe(200)
    expect(push.body.accepted).toEqual([expect.objectContaining({ id: workout, status: 'applied' })])

    const deadline = Date.now() + 60_000
    let pulled: { id: string; data: { [k: string]: unknown } }[] = []
    while (Date.now() < deadline && pulled.length === 0) {
      const pull = await call('/sync/pull', { client_id: 'readme-1', checkpoint: snap.body.checkpoint, ...pair })
      expect(pull.status).toBe(200)
      pulled = pull.body.changes
      if (pulled.length === 0) await new Promise((r) => setTimeout(r, 100))
    }
    expect(pulled).toEqual([expect.objectContaining({ id: workout, data: expect.objectContaining({ user_id: user }) })])
  })

  it('the client quick start syncs a row into the demo server (npm start) and exits', async () => {
    const snippet = extractQuickStart('Quick start (client SDK)')
    expect(snippet.lang).toBe('js')
    const db = await freshDb()
    // `npm start` is synchrod serving the demo schema in dev header mode (no JWT_SECRET).
    const daemon = startProgram(
      join(ROOT, 'packages/synchrod/bin/synchrod.js'),
      { DATABASE_URL: db.url, LISTEN_ADDR: '127.0.0.1:0', SLOT_NAME: `s_${db.name}`.slice(0, 63) },
      await scratch(),
      ['serve', '--demo'],
    )
    programs.push(daemon)
    const base = (await waitForOutput(daemon, /listening on (http:\/\/[^\s"]+)/))[1]?.replace('localhost', '127.0.0.1')
    await captureStreaming(db, `s_${db.name}`.slice(0, 63))

    const client = await run('client.mjs', snippet.code, { SERVER_URL: base ?? '' })
    expect(await client.exited, client.output()).toBe(0)
    const id = /saved on the server: ([0-9a-f-]{36})/.exec(client.output())?.[1]
    expect(id, client.output()).toBeDefined()
    const user = /const userID = '([0-9a-f-]{36})'/.exec(snippet.code)?.[1]
    const { rows } = await db.pool.query('SELECT user_id::text, ship_address FROM orders WHERE id = $1', [id])
    expect(rows).toEqual([{ user_id: user, ship_address: '1 Main St' }])
    expect(client.output()).toMatch(/\d+ orders/)
  })
})
