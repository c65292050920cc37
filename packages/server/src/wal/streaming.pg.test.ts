import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { readChangelog, setupNorthwind, WAL_CONSUMER_WORKER, waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Registry } from '../registry/registry.js'
import {
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  startWalConsumer,
  type WalConsumer,
} from './index.js'

// Big transactions under pgoutput protocol 2 streaming. The walsender's logical_decoding_work_mem is set to its
// minimum (64kB) for the consumer's stream, so a few thousand rows are already streamed while in progress.

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '../../../..')

let db: TestDatabase
let registry: Registry
const q = (text: string, params: unknown[] = []) => db.pool.query(text, params)

beforeAll(async () => {
  db = await createTestDatabase()
  registry = await setupNorthwind(db.pool)
})
afterAll(async () => {
  await db?.drop()
})

/** Files left anywhere under `dir`. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name)
}

async function countInBucket(user: string): Promise<{ op: number; n: number }[]> {
  const { rows } = await q(
    `SELECT operation AS op, count(*)::int AS n FROM sync_changelog WHERE bucket_id = $1 GROUP BY 1 ORDER BY 1`,
    [`user:${user}`],
  )
  return rows as { op: number; n: number }[]
}

async function marker(): Promise<void> {
  const id = randomUUID()
  await q('INSERT INTO products (id, name) VALUES ($1, $2)', [id, 'marker'])
  await waitFor(async () => ((await readChangelog(db.pool, id)).length > 0 ? true : undefined), 60_000, 'marker')
}

describe.each([
  { streaming: true, name: 'streamed while in progress (protocol 2)' },
  { streaming: false, name: 'sent whole at its commit (protocol 1)' },
])('a big transaction $name', ({ streaming }) => {
  let consumer: WalConsumer
  let spillDir: string
  const logs: { msg: string; obj: Record<string, unknown> }[] = []
  const log = (obj: unknown, msg?: string) => logs.push({ msg: msg ?? '', obj: obj as Record<string, unknown> })
  const errors: Error[] = []

  beforeAll(async () => {
    spillDir = mkdtempSync(path.join(tmpdir(), 'synchro-spill-test-'))
    // Each variant consumes (and writes the changelog) alone: its own database.
    if (!streaming) {
      await db.drop()
      db = await createTestDatabase()
      registry = await setupNorthwind(db.pool)
    }
    consumer = startWalConsumer({
      pool: db.pool,
      registry,
      replicationUrl: db.url,
      slotName: db.name,
      streaming,
      statusIntervalMs: 200,
      leaderRetryMs: 100,
      batchMaxEvents: 500,
      logicalDecodingWorkMem: '64kB',
      spillDir,
      logger: { info: log, warn: log, error: log, debug: log },
      onError: (e) => errors.push(e),
    })
    await waitFor(async () => (consumer.status().running ? true : undefined), 20_000, 'consumer running')
  })
  afterAll(async () => {
    await consumer?.stop()
    rmSync(spillDir, { recursive: true, force: true })
  })

  it('is captured once at its commit, in parts, without its rolled-back savepoint, around a small transaction', async () => {
    const [big, dropped, small] = [randomUUID(), randomUUID(), randomUUID()]
    const c = await db.pool.connect()
    try {
      await c.query('BEGIN')
      await c.query('INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 3000)', [big])
      await c.query('SAVEPOINT s')
      await c.query('INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 2000)', [dropped])
      await c.query('ROLLBACK TO s')
      // A small transaction commits while the big one runs: it is captured first (commit order).
      await q('INSERT INTO orders (user_id) VALUES ($1)', [small])
      await c.query('UPDATE orders SET total_cents = 7 WHERE user_id = $1', [big])
      await c.query('COMMIT')
    } finally {
      c.release()
    }
    await marker()
    expect(await countInBucket(big)).toEqual([
      { op: 1, n: 3000 },
      { op: 2, n: 3000 },
    ])
    expect(await countInBucket(dropped)).toEqual([])
    expect(await countInBucket(small)).toEqual([{ op: 1, n: 1 }])
    // Each record: one insert then one update; the small transaction's row comes before all of the big one's.
    const { rows } = await q(
      `SELECT record_id, array_agg(operation ORDER BY seq) AS ops FROM sync_changelog WHERE bucket_id = $1
        GROUP BY 1 HAVING array_agg(operation ORDER BY seq) <> '{1,2}'`,
      [`user:${big}`],
    )
    expect(rows).toEqual([])
    const order = await q(
      `SELECT min(seq) FILTER (WHERE bucket_id = $1) < min(seq) FILTER (WHERE bucket_id = $2) AS ok FROM sync_changelog`,
      [`user:${small}`, `user:${big}`],
    )
    expect(order.rows[0].ok).toBe(true)
    const edges = await q(`SELECT count(*)::int AS n FROM sync_bucket_edges WHERE bucket_id = $1`, [`user:${big}`])
    expect(edges.rows[0].n).toBe(3000)
    // It really went through a spill file: 6000 row changes, and when streamed, those of the savepoint that the
    // server had already sent before the rollback (the rest it drops itself).
    const spilled = logs.find((l) => l.msg === 'wal: spilled transaction committed')
    expect(spilled?.obj.streamed).toBe(streaming)
    if (streaming) {
      expect(spilled?.obj.changes).toBeGreaterThan(6000)
      expect(spilled?.obj.changes).toBeLessThanOrEqual(8000)
    } else expect(spilled?.obj.changes).toBe(6000)
    expect(filesUnder(spillDir)).toEqual([])
    expect(errors).toEqual([])
  })

  it.runIf(streaming)('that aborts leaves nothing: no changelog rows, no edges, no spill file', async () => {
    const user = randomUUID()
    const c = await db.pool.connect()
    try {
      await c.query('BEGIN')
      await c.query('INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, 3000)', [user])
      await c.query('ROLLBACK')
    } finally {
      c.release()
    }
    await marker()
    expect(await countInBucket(user)).toEqual([])
    expect(logs.some((l) => l.msg === 'wal: streamed transaction aborted')).toBe(true)
    expect(filesUnder(spillDir)).toEqual([])
    expect(errors).toEqual([])
  })
})

function spawnWorker(): { child: ChildProcess; ready: Promise<boolean> } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', WAL_CONSUMER_WORKER], {
    cwd: repoRoot,
    env: {
      ...process.env,
      SYNCHRO_CRASH_DB_URL: db.url,
      SYNCHRO_CRASH_SLOT: `${db.name}_s`,
      SYNCHRO_CRASH_BATCH: '200',
      SYNCHRO_CRASH_WORK_MEM: '64kB',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stderr?.resume()
  const ready = new Promise<boolean>((resolve) => {
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve(true)
    })
    child.on('exit', () => resolve(false))
  })
  return { child, ready }
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

it('a consumer killed while a streamed transaction is received or written: all of it once, never a part', async () => {
  const slot = `${db.name}_s`
  await ensurePublication(db.pool, registry, 'synchro_pub')
  await ensureReplicaIdentityFull(db.pool, registry)
  await ensureSlot(db.pool, slot)
  const users = [randomUUID(), randomUUID(), randomUUID()]
  const N = 6000
  for (const u of users) {
    await q('INSERT INTO orders (user_id) SELECT $1::uuid FROM generate_series(1, $2::int)', [u, N])
  }
  // Meanwhile: every observation of the changelog sees each big transaction whole or not at all.
  let watching = true
  const seen = new Set<number>()
  const watcher = (async () => {
    while (watching) {
      for (const u of users) for (const r of await countInBucket(u)) seen.add(r.n)
      await new Promise((r) => setTimeout(r, 20))
    }
  })()
  let kills = 0
  for (let round = 0; round < 6; round++) {
    const { child, ready } = spawnWorker()
    await Promise.race([ready, new Promise((r) => setTimeout(r, 15_000))])
    await new Promise((r) => setTimeout(r, 200 + Math.random() * 1500))
    await kill(child)
    kills++
  }
  const consumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: slot,
    leaderRetryMs: 50,
    batchMaxEvents: 200,
    logicalDecodingWorkMem: '64kB',
  })
  try {
    await waitFor(
      async () => {
        const done = await Promise.all(users.map(countInBucket))
        return done.every((d) => d.length === 1 && d[0]?.n === N) ? true : undefined
      },
      120_000,
      'final catch-up',
    )
    await marker()
  } finally {
    await consumer.stop()
    watching = false
    await watcher
  }
  expect(kills).toBe(6)
  for (const u of users) expect(await countInBucket(u)).toEqual([{ op: 1, n: N }])
  const dup = await q(
    `SELECT count(*)::int AS n FROM (SELECT record_id FROM sync_changelog WHERE bucket_id = ANY($1) GROUP BY 1
      HAVING count(*) > 1) d`,
    [users.map((u) => `user:${u}`)],
  )
  expect(dup.rows[0].n).toBe(0)
  expect([...seen].filter((n) => n !== N)).toEqual([])
  await q('SELECT pg_drop_replication_slot($1)', [slot])
}, 300_000)
