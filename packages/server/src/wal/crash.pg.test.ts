import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { readChangelog, setupNorthwind, WAL_CONSUMER_WORKER, waitFor } from '@synchro/test-harness/wal-fixtures'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Registry } from '../registry/registry.js'
import { ensurePublication, ensureReplicaIdentityFull, ensureSlot, startWalConsumer } from './index.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const repoRoot = path.resolve(here, '../../../..')

let db: TestDatabase
let registry: Registry
beforeAll(async () => {
  db = await createTestDatabase()
  registry = await setupNorthwind(db.pool)
  // Changes are only captured once the slot exists: create it before the writer starts.
  await ensurePublication(db.pool, registry, 'synchro_pub')
  await ensureReplicaIdentityFull(db.pool, registry)
  await ensureSlot(db.pool, db.name) // slots are cluster-wide: one per test database
})
afterAll(async () => {
  await db?.drop()
})

/** Expected changelog: per "bucket|record", the ops in order. */
type Expected = Map<string, number[]>

/** A writer that changes orders in small transactions and records what the changelog must contain. */
class Writer {
  readonly expected: Expected = new Map()
  readonly orders = new Map<string, { owner: string; deleted: boolean }>()
  readonly users = Array.from({ length: 4 }, () => randomUUID())
  writes = 0
  #stop = false
  #done: Promise<void> | undefined

  constructor(readonly pool: TestDatabase['pool']) {}

  #expect(owner: string, id: string, op: number) {
    const k = `user:${owner}|${id}`
    const a = this.expected.get(k)
    if (a) a.push(op)
    else this.expected.set(k, [op])
  }

  #pick<T>(a: T[]): T {
    return a[Math.floor(Math.random() * a.length)] as T
  }

  async step(): Promise<void> {
    const ids = [...this.orders.keys()]
    const r = Math.random()
    if (ids.length < 5 || r < 0.35) {
      const id = randomUUID()
      const owner = this.#pick(this.users)
      await this.pool.query('INSERT INTO orders (id, user_id) VALUES ($1, $2)', [id, owner])
      this.orders.set(id, { owner, deleted: false })
      this.#expect(owner, id, 1)
    } else {
      const id = this.#pick(ids)
      const o = this.orders.get(id) as { owner: string; deleted: boolean }
      if (r < 0.6) {
        await this.pool.query('UPDATE orders SET total_cents = total_cents + 1 WHERE id = $1', [id])
        this.#expect(o.owner, id, o.deleted ? 3 : 2)
      } else if (r < 0.75) {
        const next = this.#pick(this.users.filter((u) => u !== o.owner))
        await this.pool.query('UPDATE orders SET user_id = $2 WHERE id = $1', [id, next])
        if (o.deleted) this.#expect(next, id, 3)
        else {
          this.#expect(next, id, 1)
          this.#expect(o.owner, id, 3)
        }
        o.owner = next
      } else if (r < 0.85) {
        await this.pool.query(`UPDATE orders SET deleted_at = ${o.deleted ? 'NULL' : 'now()'} WHERE id = $1`, [id])
        this.#expect(o.owner, id, o.deleted ? 1 : 3)
        o.deleted = !o.deleted
      } else {
        await this.pool.query('DELETE FROM orders WHERE id = $1', [id])
        this.#expect(o.owner, id, 3)
        this.orders.delete(id)
      }
    }
    this.writes++
  }

  start(): void {
    this.#done = (async () => {
      while (!this.#stop) await this.step()
    })()
  }

  async stop(): Promise<void> {
    this.#stop = true
    await this.#done
  }
}

function spawnWorker(): { child: ChildProcess; ready: Promise<boolean> } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', WAL_CONSUMER_WORKER], {
    cwd: repoRoot,
    env: { ...process.env, SYNCHRO_CRASH_DB_URL: db.url, SYNCHRO_CRASH_SLOT: db.name },
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

it('a consumer process SIGKILLed at random points over 20 rounds: every write lands exactly once per bucket', async () => {
  const writer = new Writer(db.pool)
  writer.start()
  let readyRounds = 0
  for (let round = 0; round < 20; round++) {
    const { child, ready } = spawnWorker()
    // Some rounds are killed during startup, most while streaming and applying batches.
    const early = Math.random() < 0.2
    if (!early && (await Promise.race([ready, new Promise((r) => setTimeout(() => r(false), 10_000))]))) readyRounds++
    await new Promise((r) => setTimeout(r, early ? Math.random() * 400 : 50 + Math.random() * 400))
    await kill(child)
  }
  await writer.stop()
  expect(readyRounds).toBeGreaterThan(10)

  // A final consumer drains the rest; a marker row tells when it has caught up.
  const consumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: db.name,
    leaderRetryMs: 50,
  })
  try {
    const marker = randomUUID()
    await db.pool.query('INSERT INTO products (id) VALUES ($1)', [marker])
    await waitFor(
      async () => ((await readChangelog(db.pool, marker)).length > 0 ? true : undefined),
      30_000,
      'final catch-up',
    )
  } finally {
    await consumer.stop()
  }

  const actual: Expected = new Map()
  for (const e of await readChangelog(db.pool)) {
    if (e.table !== 'orders') continue
    const k = `${e.bucket}|${e.id}`
    const a = actual.get(k)
    if (a) a.push(e.op)
    else actual.set(k, [e.op])
  }
  expect(writer.writes).toBeGreaterThan(100)
  const diff: string[] = []
  for (const [k, v] of writer.expected) {
    const a = actual.get(k) ?? []
    if (a.join() !== v.join()) diff.push(`${k}: expected ${v.join()} got ${a.join()}`)
  }
  for (const [k, a] of actual) if (!writer.expected.has(k)) diff.push(`${k}: unexpected ${a.join()}`)
  if (diff.length > 0) console.log(diff.slice(0, 30).join('\n'), diff.length)
  // Equal sequences per (bucket, record): a duplicate (replayed batch) or a gap would break this.
  expect(Object.fromEntries([...actual].sort())).toEqual(Object.fromEntries([...writer.expected].sort()))
}, 120_000)
