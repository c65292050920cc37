import { randomUUID } from 'node:crypto'
import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { type Daemon, poll, run, startDaemon } from '@synchro/test-harness/synchrod'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startEmbeddedPostgres } from './embedded.js'

// The daemon as users run it: bin/synchrod.js spawned as a child process, talking HTTP and PostgreSQL.

const daemons: Daemon[] = []
const databases: TestDatabase[] = []
let cwd: string

beforeAll(async () => {
  cwd = await mkdtemp(path.join(tmpdir(), 'synchrod-daemon-'))
})
afterEach(() => {
  for (const d of daemons.splice(0)) d.kill()
})
afterAll(async () => {
  for (const db of databases.splice(0)) await db.drop()
  await rm(cwd, { recursive: true, force: true })
})

async function freshDb(): Promise<TestDatabase> {
  const db = await createTestDatabase('synchrod_t')
  databases.push(db)
  return db
}

/** Replication slots are per server, not per database: each test database gets its own (Decision 32). */
function slotFor(url: string | undefined): string {
  return url ? `s_${new URL(url).pathname.slice(1)}`.slice(0, 63) : 'synchro_slot'
}

async function serve(env: Record<string, string>, args: string[] = []): Promise<Daemon> {
  const d = await startDaemon(['serve', '--demo', ...args], {
    cwd,
    env: { LISTEN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'info', SLOT_NAME: slotFor(env.DATABASE_URL), ...env },
  })
  daemons.push(d)
  return d
}

type Json = any

interface Call {
  status: number
  body: Json
  headers: Headers
}

function client(base: string, user: string) {
  return async (
    method: 'GET' | 'POST',
    route: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Call> => {
    const res = await fetch(`${base}${route}`, {
      method,
      headers: { 'x-user-id': user, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers }
  }
}

async function health(d: Daemon): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${d.url}/healthz`)
  return { status: res.status, body: await res.json() }
}

describe('synchrod daemon (spawned binary, real PostgreSQL)', () => {
  it('serves the six endpoints on DATABASE_URL; pull sees a pushed row once the consumer captured it', async () => {
    const db = await freshDb()
    const d = await serve({ DATABASE_URL: db.url })
    expect(d.output()).toMatch(/AUTHENTICATION IS OFF/)

    const user = randomUUID()
    const call = client(d.url, user)
    const reg = await call('POST', '/sync/register', {
      client_id: 'c1',
      platform: 'test',
      app_version: '1.0.0',
      schema_version: 0,
      schema_hash: '',
    })
    expect(reg.status).toBe(200)
    const pair = { schema_version: reg.body.schema_version, schema_hash: reg.body.schema_hash }

    // Snapshot first (a new client must), then push, then pull from the snapshot's checkpoint.
    const snap = await call('POST', '/sync/snapshot', { client_id: 'c1', ...pair })
    expect(snap.status).toBe(200)
    expect(snap.body.records.map((r: { table_name: string }) => r.table_name)).toContain('products')

    const orderId = randomUUID()
    const push = await call('POST', '/sync/push', {
      client_id: 'c1',
      changes: [
        {
          id: orderId,
          table_name: 'orders',
          operation: 'create',
          data: { ship_address: '1 Main St', total_cents: 4200 },
          client_updated_at: new Date().toISOString(),
        },
      ],
      ...pair,
    })
    expect(push.status).toBe(200)
    expect(push.body.accepted).toHaveLength(1)

    const pulled = await poll(async () => {
      const p = await call('POST', '/sync/pull', { client_id: 'c1', checkpoint: snap.body.checkpoint, ...pair })
      return p.body.changes?.some((c: { id: string }) => c.id === orderId) ? p : undefined
    }, 15_000)
    expect(pulled.status).toBe(200)
    const change = pulled.body.changes.find((c: { id: string }) => c.id === orderId)
    expect(change.data).toMatchObject({ user_id: user, ship_address: '1 Main St', total_cents: 4200 })

    const tables = await call('GET', '/sync/tables')
    expect(tables.status).toBe(200)
    expect(tables.body.tables.map((t: { table_name: string }) => t.table_name)).toEqual([
      'categories',
      'order_details',
      'orders',
      'products',
    ])
    const schema = await call('GET', '/sync/schema')
    expect(schema.status).toBe(200)
    expect(schema.body.schema_hash).toBe(pair.schema_hash)

    // Request ids: echoed when given, generated otherwise.
    const echoed = await call('GET', '/sync/tables', undefined, { 'x-request-id': 'req-123' })
    expect(echoed.headers.get('x-request-id')).toBe('req-123')
    expect(tables.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    expect(d.output()).toContain('"reqId":"req-123"')

    const h = await health(d)
    expect(h.status).toBe(200)
    expect(h.body).toMatchObject({
      status: 'ok',
      database: { reachable: true },
      consumer: { enabled: true, leader: true },
    })

    const metrics = await (await fetch(`${d.url}/metrics`)).text()
    expect(metrics).toMatch(/synchro_http_requests_total\{route="\/sync\/push",method="POST",status="200"\} 1/)
    expect(metrics).toMatch(/synchro_push_records_total\{status="applied",reason=""\} 1/)
    expect(metrics).toMatch(/synchro_snapshot_records_total \d+/)
    expect(metrics).toMatch(/synchro_pull_records_total\{kind="change"\} [1-9]/)
    expect(metrics).toMatch(/synchro_changelog_max_seq [1-9]/)
    expect(metrics).toMatch(/synchro_wal_consumer_leader 1/)
    expect(metrics).toMatch(/synchro_wal_lag_bytes \d+/)
    expect(metrics).toContain('process_cpu_user_seconds_total')
    // No row data or user ids in the logs.
    expect(d.output()).not.toContain('1 Main St')
    expect(d.output()).not.toContain(user)

    // status and compact read the same database.
    const st = await run(['status', '--json'], { env: { DATABASE_URL: db.url, SLOT_NAME: slotFor(db.url) }, cwd })
    expect(st.code, st.stderr).toBe(0)
    const report = JSON.parse(st.stdout)
    expect(report.clients).toMatchObject({ total: 1, active: 1, inactive: 0, stale: 0 })
    expect(report.changelog.maxSeq).toBeGreaterThan(0)
    expect(report.slot).toMatchObject({ name: slotFor(db.url), exists: true, active: true })
    expect(report.consumer.leader?.pid).toBeGreaterThan(0)
    const text = await run(['status'], { env: { DATABASE_URL: db.url, SLOT_NAME: slotFor(db.url) }, cwd })
    expect(text.stdout).toMatch(/clients\s+1 \(1 active, 0 stale, 0 deactivated\)/)

    d.proc.kill('SIGTERM')
    expect(await d.exited).toEqual({ code: 0, signal: null })
  })

  it('SIGTERM lets an in-flight push finish, then exits 0', async () => {
    const db = await freshDb()
    const d = await serve({ DATABASE_URL: db.url })
    const user = randomUUID()
    const call = client(d.url, user)
    const reg = await call('POST', '/sync/register', {
      client_id: 'c1',
      platform: 't',
      app_version: '1',
      schema_version: 0,
      schema_hash: '',
    })
    const pair = { schema_version: reg.body.schema_version, schema_hash: reg.body.schema_hash }
    const orderId = randomUUID()
    const create = { id: orderId, table_name: 'orders', operation: 'create', data: { ship_address: 'a' } }
    expect(
      (await call('POST', '/sync/push', { client_id: 'c1', changes: [create], ...pair })).body.accepted,
    ).toHaveLength(1)

    // Hold the row lock so the next push blocks inside its transaction.
    const locker = new pg.Client({ connectionString: db.url })
    await locker.connect()
    await locker.query('BEGIN')
    await locker.query('SELECT 1 FROM orders WHERE id = $1 FOR UPDATE', [orderId])
    const update = {
      ...create,
      operation: 'update',
      data: { ship_address: 'b' },
      client_updated_at: new Date().toISOString(),
    }
    const inFlight = call('POST', '/sync/push', { client_id: 'c1', changes: [update], ...pair })
    await poll(async () => {
      const { rows } = await db.pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      )
      return rows.length > 0
    })
    d.proc.kill('SIGTERM')
    // Stopped accepting: new connections are refused while the push is still running.
    await poll(async () => {
      try {
        await fetch(`${d.url}/healthz`)
        return false
      } catch {
        return true
      }
    }, 5_000)
    await locker.query('COMMIT')
    await locker.end()
    const res = await inFlight
    expect(res.status).toBe(200)
    expect(res.body.accepted).toHaveLength(1)
    expect(await d.exited).toEqual({ code: 0, signal: null })
    expect(d.output()).toMatch(/"msg":"stopped"/)
  })

  it('two daemons on one database: one consumer leads; SIGKILL hands leadership over', async () => {
    const db = await freshDb()
    const [a, b] = await Promise.all([serve({ DATABASE_URL: db.url }), serve({ DATABASE_URL: db.url })])
    const leaders = await poll(async () => {
      const hs = await Promise.all([health(a as Daemon), health(b as Daemon)])
      const n = hs.filter((h) => h.body.consumer.leader).length
      return n === 1 ? hs : undefined
    })
    const [leader, follower] = leaders[0]?.body.consumer.leader ? [a, b] : [b, a]
    leader?.proc.kill('SIGKILL')
    const started = Date.now()
    await poll(async () => (await health(follower as Daemon)).body.consumer.leader === true, 10_000)
    expect(Date.now() - started).toBeLessThan(10_000)

    // The new leader captures writes: a push through it reaches pull.
    const user = randomUUID()
    const call = client((follower as Daemon).url, user)
    const reg = await call('POST', '/sync/register', {
      client_id: 'c',
      platform: 't',
      app_version: '1',
      schema_version: 0,
      schema_hash: '',
    })
    const pair = { schema_version: reg.body.schema_version, schema_hash: reg.body.schema_hash }
    const snap = await call('POST', '/sync/snapshot', { client_id: 'c', ...pair })
    const id = randomUUID()
    await call('POST', '/sync/push', {
      client_id: 'c',
      changes: [{ id, table_name: 'orders', operation: 'create', data: {} }],
      ...pair,
    })
    await poll(async () => {
      const p = await call('POST', '/sync/pull', { client_id: 'c', checkpoint: snap.body.checkpoint, ...pair })
      return p.body.changes?.some((c: { id: string }) => c.id === id)
    }, 15_000)
    follower?.proc.kill('SIGTERM')
    expect((await follower?.exited)?.code).toBe(0)
  })

  it('a REPLICATION_URL that reaches another database fails the start, naming both', async () => {
    const db = await freshDb()
    const other = new URL(db.url)
    other.pathname = '/postgres'
    const env = { DATABASE_URL: db.url, REPLICATION_URL: other.toString(), LISTEN_ADDR: '127.0.0.1:0' }
    const r = await run(['serve', '--demo'], { env: { ...env, SLOT_NAME: slotFor(db.url) }, cwd })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(
      /REPLICATION_URL .*reaches database "postgres".* not ".*" of DATABASE_URL: it must be the same/,
    )
  })

  it('split deployment: serve --no-consumer plus synchrod consume', async () => {
    const db = await freshDb()
    const env = { DATABASE_URL: db.url, LISTEN_ADDR: '127.0.0.1:0', SLOT_NAME: slotFor(db.url) }
    const api = await serve({ DATABASE_URL: db.url }, ['--no-consumer'])
    const worker = await startDaemon(['consume', '--demo'], { cwd, env })
    daemons.push(worker)
    expect((await health(api)).body.consumer).toEqual({ enabled: false })
    await poll(async () => (await health(worker)).body.consumer.leader === true)
    // The consumer process serves only health and metrics: no sync API, no status page (it has no authentication).
    expect((await fetch(`${worker.url}/sync/tables`)).status).toBe(404)
    expect((await fetch(`${worker.url}/status`)).status).toBe(404)
    expect((await fetch(`${worker.url}/status.json`)).status).toBe(404)
    expect(await (await fetch(`${worker.url}/metrics`)).text()).toMatch(/synchro_wal_consumer_leader 1/)

    const call = client(api.url, randomUUID())
    const reg = await call('POST', '/sync/register', {
      client_id: 'c',
      platform: 't',
      app_version: '1',
      schema_version: 0,
      schema_hash: '',
    })
    const pair = { schema_version: reg.body.schema_version, schema_hash: reg.body.schema_hash }
    const snap = await call('POST', '/sync/snapshot', { client_id: 'c', ...pair })
    const id = randomUUID()
    await call('POST', '/sync/push', {
      client_id: 'c',
      changes: [{ id, table_name: 'orders', operation: 'create', data: {} }],
      ...pair,
    })
    await poll(async () => {
      const p = await call('POST', '/sync/pull', { client_id: 'c', checkpoint: snap.body.checkpoint, ...pair })
      return p.body.changes?.some((c: { id: string }) => c.id === id)
    }, 15_000)
    worker.proc.kill('SIGTERM')
    api.proc.kill('SIGTERM')
    expect((await worker.exited).code).toBe(0)
    expect((await api.exited).code).toBe(0)
  })

  it('consume takes its spill directory and decoding memory from the settings', async () => {
    const db = await freshDb()
    const spillDir = await mkdtemp(path.join(tmpdir(), 'synchrod-spill-'))
    try {
      const env = {
        DATABASE_URL: db.url,
        LISTEN_ADDR: '127.0.0.1:0',
        SLOT_NAME: slotFor(db.url),
        WAL_SPILL_DIR: spillDir,
        WAL_DECODING_WORK_MEM: '64kB',
      }
      const worker = await startDaemon(['consume', '--demo'], { cwd, env })
      daemons.push(worker)
      await poll(async () => (await health(worker)).body.consumer.leader === true)
      const pool = new pg.Pool({ connectionString: db.url, max: 1 })
      try {
        const before = Number((await pool.query('SELECT count(*) AS n FROM sync_changelog')).rows[0].n)
        // 5 000 rows in one transaction: far more than 64 kB, so PostgreSQL streams it while it runs.
        await pool.query(
          "INSERT INTO orders (user_id, status) SELECT gen_random_uuid(), 'pending' FROM generate_series(1, 5000)",
        )
        await poll(async () => {
          const n = Number((await pool.query('SELECT count(*) AS n FROM sync_changelog')).rows[0].n)
          return n >= before + 5000
        }, 30_000)
      } finally {
        await pool.end()
      }
      // The stream went through a private directory inside the configured one (removed when the session ends).
      expect((await readdir(spillDir)).some((name) => name.startsWith('synchro-wal-'))).toBe(true)
      worker.proc.kill('SIGTERM')
      expect((await worker.exited).code).toBe(0)
      expect(await readdir(spillDir)).toEqual([])
    } finally {
      await rm(spillDir, { recursive: true, force: true })
    }
  })

  it('starts an embedded PostgreSQL without DATABASE_URL and stops it on SIGTERM', async () => {
    const dataRoot = await mkdtemp(path.join(tmpdir(), 'synchrod-embedded-'))
    await chmod(dataRoot, 0o755) // as root, PostgreSQL runs as `postgres` and must reach the folder
    const dataDir = path.join(dataRoot, 'pgdata')
    try {
      const d = await serve({ SYNCHRO_DATA_DIR: dataDir })
      const h = await health(d)
      expect(h.status).toBe(200)
      expect(h.body.database.reachable).toBe(true)
      const reg = await client(d.url, randomUUID())('POST', '/sync/register', {
        client_id: 'c',
        platform: 't',
        app_version: '1',
        schema_version: 0,
        schema_hash: '',
      })
      expect(reg.status).toBe(200)
      // A second command finds the running embedded server instead of starting another one.
      const st = await run(['status', '--json', '--data-dir', dataDir], { cwd })
      expect(st.code, st.stderr).toBe(0)
      expect(JSON.parse(st.stdout).clients.total).toBe(1)
      d.proc.kill('SIGTERM')
      expect(await d.exited).toEqual({ code: 0, signal: null })
      // PostgreSQL stopped with it: its lock file is gone.
      await expect(stat(path.join(dataDir, 'postmaster.pid'))).rejects.toThrow()
    } finally {
      await rm(dataRoot, { recursive: true, force: true })
    }
  })

  it('refuses a PostgreSQL without wal_level=logical and says what to set', async () => {
    const dataRoot = await mkdtemp(path.join(tmpdir(), 'synchrod-replica-'))
    await chmod(dataRoot, 0o755)
    const replica = await startEmbeddedPostgres({
      dataDir: path.join(dataRoot, 'pgdata'),
      persistent: false,
      settings: ['wal_level=replica'],
    })
    try {
      const r = await run(['serve', '--demo'], { env: { DATABASE_URL: replica.url, LISTEN_ADDR: '127.0.0.1:0' }, cwd })
      expect(r.code).not.toBe(0)
      expect(r.stderr).toContain('PostgreSQL has wal_level=replica')
      expect(r.stderr).toContain('ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL')
    } finally {
      await replica.stop()
      await rm(dataRoot, { recursive: true, force: true })
    }
  })

  it('rls --apply is idempotent and compact prints a JSON result', async () => {
    const db = await freshDb()
    const env = { DATABASE_URL: db.url }
    const first = await run(['rls', '--demo', '--apply'], { env, cwd })
    expect(first.code, first.stderr).toBe(0)
    const second = await run(['rls', '--demo', '--apply'], { env, cwd })
    expect(second.code, second.stderr).toBe(0)
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM pg_policies WHERE tablename = 'orders'`)
    expect(rows[0].n).toBe(4)
    const migrate = await run(['migrate', '--apply'], { env, cwd })
    expect(migrate.code, migrate.stderr).toBe(0)
    const compact = await run(['compact', '--demo'], { env, cwd })
    expect(compact.code, compact.stderr).toBe(0)
    expect(JSON.parse(compact.stdout)).toEqual({ deactivatedClients: 0, safeSeq: 0, deletedEntries: 0 })
  })
})
