// WAL → changelog throughput: our consumer (decode + bucket + batched changelog/edges/LSN transactions) against the
// raw decode rate of the same WAL by `pg_recvlogical` (pgoutput, same publication, output discarded).
// Usage: npx tsx bench/wal/index.ts [changes]   (env BENCH_WAL_CHANGES, default 100 000; BENCH_QUICK=1 → 10 000)
// Env: BENCH_WAL_BATCH (consumer batchMaxEvents), BENCH_WAL_DEBUG=1 (per-batch log: pipelined, prep/write/commit
// ms), BENCH_WAL_CPU=1 (CPU ms of this process and of the database's backends during the consumer phase).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { runMigrations } from '../../packages/server/src/migrations/migrations.js'
import { Registry } from '../../packages/server/src/registry/registry.js'
import {
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  startWalConsumer,
} from '../../packages/server/src/wal/index.js'
import { createBenchDatabase, envInt, writeResult } from '../lib.js'

const changes = process.argv[2] ? Number.parseInt(process.argv[2], 10) : envInt('BENCH_WAL_CHANGES', 100_000)
const TXN_ROWS = envInt('BENCH_WAL_TXN_ROWS', 1000, 1)
const RECVLOGICAL = process.env.PG_RECVLOGICAL ?? '/usr/lib/postgresql/15/bin/pg_recvlogical'

const db = await createBenchDatabase('wal')
// Slot names are cluster-wide: unique ones keep concurrent runs (and test suites using synchro_slot) apart.
const suffix = randomBytes(4).toString('hex')
const SLOT = `wal_bench_${suffix}`
const RAW_SLOT = `wal_bench_raw_${suffix}`
try {
  const { pool, url } = db
  await runMigrations(pool)
  await pool.query(`
    CREATE TABLE bench_items (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id uuid NOT NULL,
      v integer NOT NULL DEFAULT 0,
      title text NOT NULL DEFAULT '',
      updated_at timestamptz NOT NULL DEFAULT now(),
      deleted_at timestamptz
    )`)
  const registry = new Registry().register({ tableName: 'bench_items', ownerColumn: 'user_id' })
  await ensurePublication(pool, registry, 'synchro_pub')
  await ensureReplicaIdentityFull(pool, registry)
  await ensureSlot(pool, SLOT)
  await ensureSlot(pool, RAW_SLOT)

  // Workload: 70 % inserts, 30 % updates, in transactions of TXN_ROWS rows, 1 000 owners.
  const inserts = Math.ceil(changes * 0.7)
  const updates = changes - inserts
  const t0 = performance.now()
  for (let done = 0; done < inserts; done += TXN_ROWS) {
    const n = Math.min(TXN_ROWS, inserts - done)
    await pool.query(
      `INSERT INTO bench_items (user_id, v, title)
       SELECT ('00000000-0000-4000-8000-' || lpad((g % 1000)::text, 12, '0'))::uuid, g, 'item ' || g
         FROM generate_series($1::int, $1::int + $2::int - 1) g`,
      [done, n],
    )
  }
  for (let done = 0; done < updates; done += TXN_ROWS) {
    const n = Math.min(TXN_ROWS, updates - done)
    await pool.query(
      `UPDATE bench_items SET v = v + 1 WHERE id IN (SELECT id FROM bench_items ORDER BY v OFFSET $1 LIMIT $2)`,
      [done, n],
    )
  }
  const { rows } = await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
  const endLsn = rows[0]?.lsn as string
  console.log(`loaded ${changes} row changes in ${((performance.now() - t0) / 1000).toFixed(1)} s (WAL end ${endLsn})`)

  // Raw baseline: pg_recvlogical decodes the same range and throws the output away.
  let raw: { seconds: number; changesPerSec: number; tool: string } | null = null
  if (existsSync(RECVLOGICAL)) {
    const r0 = performance.now()
    await new Promise<void>((resolve, reject) => {
      const p = spawn(
        RECVLOGICAL,
        [
          '-d',
          url,
          `--slot=${RAW_SLOT}`,
          '--start',
          '--no-loop',
          `--endpos=${endLsn}`,
          '-o',
          'proto_version=1',
          '-o',
          'publication_names=synchro_pub',
          '-f',
          '/dev/null',
        ],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      )
      p.on('error', reject)
      p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_recvlogical exited with ${code}`))))
    })
    const seconds = (performance.now() - r0) / 1000
    raw = { seconds, changesPerSec: changes / seconds, tool: 'pg_recvlogical' }
  } else {
    // Fallback baseline: decode through the SQL interface on the second slot.
    const r0 = performance.now()
    await pool.query(
      `SELECT count(*) FROM pg_logical_slot_get_binary_changes($2, $1::pg_lsn, NULL,
         'proto_version', '1', 'publication_names', 'synchro_pub')`,
      [endLsn, RAW_SLOT],
    )
    const seconds = (performance.now() - r0) / 1000
    raw = { seconds, changesPerSec: changes / seconds, tool: 'pg_logical_slot_get_binary_changes' }
  }
  console.log(`raw (${raw.tool}): ${raw.seconds.toFixed(2)} s, ${Math.round(raw.changesPerSec)} changes/s`)
  // Drop the raw slot now: pg_recvlogical may still hold it for a moment after exiting, and a slot left behind
  // would keep the database (and WAL) from being dropped at the end.
  for (let i = 0; i < 50; i++) {
    const r = await pool.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
      RAW_SLOT,
    ])
    if (r.rows.length === 0) break
    if (!r.rows[0]?.active) {
      await pool.query('SELECT pg_drop_replication_slot($1)', [RAW_SLOT]).catch(() => {})
      continue
    }
    await new Promise((res) => setTimeout(res, 100))
  }

  // Ours: from consumer start until every change is a committed changelog row.
  // BENCH_WAL_CPU=1: CPU time used during the consumer phase by this process and by the database's backends
  // (same host only: read from /proc).
  const cpuSample = async (): Promise<Map<string, number>> => {
    const { readFileSync } = await import('node:fs')
    const m = new Map<string, number>()
    const u = process.cpuUsage()
    m.set('node', Math.round((u.user + u.system) / 1000))
    const { rows } = await pool.query<{ pid: number; type: string }>(
      `SELECT pid, backend_type AS type FROM pg_stat_activity WHERE datname = current_database()`,
    )
    for (const r of rows) {
      try {
        const f = readFileSync(`/proc/${r.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
        m.set(`${r.type} ${r.pid}`, (Number(f[11]) + Number(f[12])) * 10)
      } catch {}
    }
    return m
  }
  const cpu0 = process.env.BENCH_WAL_CPU ? await cpuSample() : undefined
  const o0 = performance.now()
  const consumer = startWalConsumer({
    pool,
    registry,
    replicationUrl: url,
    slotName: SLOT,
    statusIntervalMs: 1000,
    ...(process.env.BENCH_WAL_BATCH ? { batchMaxEvents: envInt('BENCH_WAL_BATCH', 10_000, 1) } : {}),
    ...(process.env.BENCH_WAL_DEBUG
      ? {
          logger: {
            info: console.log,
            warn: console.log,
            error: console.log,
            debug: (o: unknown) => console.log(JSON.stringify(o)),
          },
        }
      : {}),
  })
  try {
    for (;;) {
      const r = await pool.query<{ n: string | null }>('SELECT max(seq)::text AS n FROM sync_changelog')
      if (Number(r.rows[0]?.n ?? 0) >= changes) break
      const err = consumer.status().lastError
      if (err) console.error(`consumer error: ${err}`)
      await new Promise((res) => setTimeout(res, 20))
    }
    if (cpu0) {
      const cpu1 = await cpuSample()
      for (const [k, v] of cpu1) console.log(`cpu ${k}: ${v - (cpu0.get(k) ?? 0)} ms`)
    }
  } finally {
    await consumer.stop()
  }
  const oursSeconds = (performance.now() - o0) / 1000
  const ours = { seconds: oursSeconds, changelogRowsPerSec: changes / oursSeconds }
  const ratio = ours.changelogRowsPerSec / raw.changesPerSec
  const pgVersion = (await pool.query<{ v: string }>('SHOW server_version')).rows[0]?.v
  console.log(`ours: ${ours.seconds.toFixed(2)} s, ${Math.round(ours.changelogRowsPerSec)} changelog rows/s`)
  console.log(`ratio ours/raw = ${ratio.toFixed(2)} (target ≥ 0.5)`)
  const file = writeResult('wal', { changes, txnRows: TXN_ROWS, pgVersion, ours, raw, ratio, target: 0.5 })
  console.log(`wrote ${file}`)
} finally {
  await db.close()
}
