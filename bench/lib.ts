// Shared helpers for benchmarks: a fresh database on a real PostgreSQL, result files, percentiles.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDatabaseOn } from '@synchro/test-harness/databases'
import pg from 'pg'
import { RequestDeadline } from '../packages/server/src/limits/deadline.js'
import { startEmbeddedPostgres } from '../packages/synchrod/src/embedded.js'

export interface BenchDatabase {
  url: string
  pool: pg.Pool
  close(): Promise<void>
}

/**
 * A fresh database for one benchmark run: on `SYNCHRO_BENCH_DATABASE_URL` (default: the machine's PostgreSQL on
 * 127.0.0.1:5432 when it answers), otherwise on a throw-away embedded PostgreSQL 17.
 */
export async function createBenchDatabase(prefix = 'bench'): Promise<BenchDatabase> {
  let root = process.env.SYNCHRO_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
  let stopEmbedded: (() => Promise<void>) | undefined
  if (!(await reachable(root))) {
    const dir = mkdtempSync(path.join(tmpdir(), 'synchro-bench-pg-'))
    const { chmodSync } = await import('node:fs')
    chmodSync(dir, 0o777)
    const emb = await startEmbeddedPostgres({ dataDir: path.join(dir, 'data'), persistent: false })
    root = emb.url
    stopEmbedded = emb.stop
  }
  const db = await createDatabaseOn(root, prefix)
  pgVersion = (await db.pool.query<{ v: string }>('SHOW server_version')).rows[0]?.v
  return {
    url: db.url,
    pool: db.pool,
    async close() {
      await db.drop()
      await stopEmbedded?.()
    },
  }
}

/** The server version of the last createBenchDatabase: every result file records it. */
let pgVersion: string | undefined

async function reachable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 })
  try {
    await c.connect()
    const { rows } = await c.query<{ w: string }>(`SELECT current_setting('wal_level') AS w`)
    return rows[0]?.w === 'logical'
  } catch {
    return false
  } finally {
    await c.end().catch(() => {})
  }
}

/** Writes `bench/results/<name>-<timestamp>.json` with the machine description and returns its path. */
export function writeResult(name: string, result: object): string {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results')
  mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    pgVersion,
  }
  writeFileSync(file, `${JSON.stringify({ name, at: new Date().toISOString(), machine, ...result }, null, 2)}\n`)
  return file
}

/** p-th percentile (0–100) of a list of numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank] as number
}

/** Integer environment variable with a default (BENCH_QUICK=1 divides defaults by `quickDivisor`). */
export function envInt(name: string, def: number, quickDivisor = 10): number {
  const v = process.env[name]
  if (v !== undefined && v !== '') return Number.parseInt(v, 10)
  return process.env.BENCH_QUICK === '1' ? Math.max(1, Math.floor(def / quickDivisor)) : def
}

/**
 * Merges `patch` into `bench/results/summary.json` (the headline numbers of the latest run of each benchmark):
 * objects merge key by key, so each benchmark replaces only its own keys and keeps everyone else's.
 */
export function mergeSummary(patch: Record<string, unknown>): string {
  // bench/scale runs benchmarks at other sizes: their numbers are not the headline ones.
  if (process.env.BENCH_SUMMARY === 'off') return ''
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results', 'summary.json')
  mkdirSync(path.dirname(file), { recursive: true })
  let current: Record<string, unknown> = {}
  try {
    current = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  } catch {
    // first run, or an unreadable file: start over
  }
  writeFileSync(file, `${JSON.stringify(deepMerge(current, patch), null, 2)}\n`)
  return file
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const old = out[k]
    const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x)
    out[k] = isObj(old) && isObj(v) ? deepMerge(old, v) : v
  }
  return out
}

/** Merges `value` under `key` into bench/results/summary.json, stamped with the time of the run. */
export function updateSummary(key: string, value: object): void {
  mergeSummary({ [key]: { ...value, at: new Date().toISOString() } })
}

/**
 * `COPY … TO STDOUT` run in this process on a pooled connection (the raw baseline of read benchmarks: no process
 * start, no psql): the bytes are received and dropped. A minimal node-pg "submittable": node-pg hands it the
 * protocol messages of the statement. Returns the row count PostgreSQL reports (`COPY n`) and the bytes received.
 */
export async function copyOut(db: pg.ClientBase, sql: string): Promise<{ rows: number; bytes: number }> {
  return await new Promise((resolve, reject) => {
    let bytes = 0
    let rows = -1
    let error: unknown
    const submittable = {
      submit(connection: { query(text: string): void }) {
        connection.query(sql)
      },
      handleCopyData(msg: { chunk: Buffer }) {
        bytes += msg.chunk.length
      },
      handleCommandComplete(msg: { text: string }) {
        const m = /^COPY (\d+)/.exec(msg.text)
        if (m) rows = Number(m[1])
      },
      handleError(err: unknown) {
        error = err
      },
      handleReadyForQuery() {
        if (error) reject(error)
        else resolve({ rows, bytes })
      },
      handleRowDescription() {},
      handleDataRow() {},
      handleEmptyQuery() {},
    }
    ;(db as unknown as { query(s: unknown): void }).query(submittable)
  })
}

/**
 * What the HTTP handler passes to every engine call: a request deadline of its default 5 s (`requestTimeoutMs`).
 * Benchmarks measure the path a served request takes (e.g. a pull's COMMIT in its own round trip under a deadline).
 */
export function handlerOptions(): { deadline: RequestDeadline } {
  return { deadline: new RequestDeadline(5_000) }
}
