// WAL → changelog throughput: our consumer (decode + bucket + batched changelog/edges/LSN transactions) against the
// raw decode rate of the same WAL by `pg_recvlogical` (pgoutput, same publication, output discarded).
// Usage: npx tsx bench/wal/index.ts [changes]   (env BENCH_WAL_CHANGES, default 100 000; BENCH_QUICK=1 → 10 000)
// Rounds: each of BENCH_WAL_ROUNDS (default 5) rounds empties the tables, creates its own pair of slots, writes the
// workload, and decodes that same WAL (raw, then ours, from an emptied changelog/edge state); medians are reported. "Done" is
// when the consumer's committed batches hold every change; the changelog rows are then counted and must match.
// Env: BENCH_WAL_BATCH (consumer batchMaxEvents), BENCH_WAL_DEBUG=1 (per-batch log: pipelined, prep/write/commit
// ms, per batch and since the consumer started), BENCH_WAL_CPU=1 (CPU ms of this process and of the database's backends
// during the consumer phase, and of the raw walsender), BENCH_WAL_PERF=<file> (`perf record -a -g` of the last round's
// consumer phase into that file; run node with --perf-basic-prof for JS names).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import type pg from 'pg'
import { runMigrations } from '../../packages/server/src/migrations/migrations.js'
import { Registry } from '../../packages/server/src/registry/registry.js'
import {
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  startWalConsumer,
} from '../../packages/server/src/wal/index.js'
import { createBenchDatabase, envInt, updateSummary, writeResult } from '../lib.js'

const changes = process.argv[2] ? Number.parseInt(process.argv[2], 10) : envInt('BENCH_WAL_CHANGES', 100_000)
const TXN_ROWS = envInt('BENCH_WAL_TXN_ROWS', 1000, 1)
const ROUNDS = envInt('BENCH_WAL_ROUNDS', 5, 1)
const RECVLOGICAL = process.env.PG_RECVLOGICAL ?? '/usr/lib/postgresql/15/bin/pg_recvlogical'

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}

const db = await createBenchDatabase('wal')
// Slot names are cluster-wide: unique ones keep concurrent runs (and test suites using synchro_slot) apart.
const suffix = randomBytes(4).toString('hex')
const slots = Array.from({ length: ROUNDS }, (_, i) => ({
  ours: `wal_bench_${suffix}_${i}`,
  raw: `wal_bench_raw_${suffix}_${i}`,
}))
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
  const pgVersion = (await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v
  const rounds: { rawSeconds: number; oursSeconds: number; ratio: number; tool: string }[] = []
  for (const [i, s] of slots.entries()) {
    // Every round starts from the same empty state and writes the same workload after creating its slots, so
    // each does the same work and no round's walsender decodes the changelog writes of the rounds before it.
    await pool.query('TRUNCATE bench_items, sync_changelog, sync_bucket_edges, sync_wal_position')
    await ensureSlot(pool, s.ours)
    await ensureSlot(pool, s.raw)
    const endLsn = await writeWorkload(pool)
    const raw = await rawDecode(pool, url, s.raw, endLsn)
    const oursSeconds = await oursDecode(pool, url, registry, s.ours, i === ROUNDS - 1)
    const round = { rawSeconds: raw.seconds, oursSeconds, ratio: raw.seconds / oursSeconds, tool: raw.tool }
    rounds.push(round)
    console.log(
      `round ${i + 1}: raw (${raw.tool}) ${raw.seconds.toFixed(2)} s, ours ${oursSeconds.toFixed(2)} s, ratio ${round.ratio.toFixed(2)}`,
    )
  }
  const rawSeconds = median(rounds.map((r) => r.rawSeconds))
  const oursSeconds = median(rounds.map((r) => r.oursSeconds))
  const raw = { seconds: rawSeconds, changesPerSec: changes / rawSeconds, tool: rounds[0]?.tool }
  const ours = { seconds: oursSeconds, changelogRowsPerSec: changes / oursSeconds }
  const ratio = median(rounds.map((r) => r.ratio))
  console.log(`raw (median of ${ROUNDS}): ${raw.seconds.toFixed(2)} s, ${Math.round(raw.changesPerSec)} changes/s`)
  console.log(
    `ours (median of ${ROUNDS}): ${ours.seconds.toFixed(2)} s, ${Math.round(ours.changelogRowsPerSec)} rows/s`,
  )
  console.log(`ratio ours/raw = ${ratio.toFixed(2)} (median of per-round ratios; target ≥ 0.5)`)
  updateSummary('wal', {
    ratio: Math.round(ratio * 1000) / 1000,
    changesPerSec: Math.round(ours.changelogRowsPerSec),
    rawChangesPerSec: Math.round(raw.changesPerSec),
    changes,
    rounds: ROUNDS,
    pgVersion,
  })
  const file = writeResult('wal', {
    changes,
    txnRows: TXN_ROWS,
    pgVersion,
    rounds,
    ours,
    raw,
    ratio,
    target: 0.5,
  })
  console.log(`wrote ${file}`)
} finally {
  // Slots of rounds that did not run (an error) would keep the database from being dropped.
  await db.pool
    .query(
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
        WHERE slot_name = ANY($1) AND NOT active`,
      [slots.flatMap((s) => [s.ours, s.raw])],
    )
    .catch(() => {})
  await db.close()
}

/** Workload: 70 % inserts, 30 % updates, in transactions of TXN_ROWS rows, 1 000 owners. Returns the WAL end. */
async function writeWorkload(pool: pg.Pool): Promise<string> {
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
  return endLsn
}

/** The raw baseline: pg_recvlogical decodes the WAL up to `endLsn` on its own slot and throws the output away. */
async function rawDecode(
  pool: pg.Pool,
  url: string,
  slot: string,
  endLsn: string,
): Promise<{ seconds: number; tool: string }> {
  let tool = 'pg_recvlogical'
  const r0 = performance.now()
  // BENCH_WAL_CPU=1: the raw walsender's CPU, sampled from /proc until it exits. Its pid is asked for until known
  // (a query every 20 ms, normally one or two); then only the file is read, every 50 ms.
  let rawCpu = 0
  let polling = process.env.BENCH_WAL_CPU !== undefined
  const poll = (async () => {
    const { readFileSync } = await import('node:fs')
    let pid: number | null | undefined
    while (polling) {
      if (!pid) {
        const { rows } = await pool.query<{ pid: number | null }>(
          'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        )
        pid = rows[0]?.pid
      }
      if (pid) {
        try {
          const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
          rawCpu = (Number(f[11]) + Number(f[12])) * 10
        } catch {}
      }
      await new Promise((r) => setTimeout(r, pid ? 50 : 20))
    }
  })()
  if (existsSync(RECVLOGICAL)) {
    await new Promise<void>((resolve, reject) => {
      const p = spawn(
        RECVLOGICAL,
        [
          '-d',
          url,
          `--slot=${slot}`,
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
  } else {
    // Fallback baseline: decode through the SQL interface.
    tool = 'pg_logical_slot_get_binary_changes'
    await pool.query(
      `SELECT count(*) FROM pg_logical_slot_get_binary_changes($2, $1::pg_lsn, NULL,
         'proto_version', '1', 'publication_names', 'synchro_pub')`,
      [endLsn, slot],
    )
  }
  const seconds = (performance.now() - r0) / 1000
  polling = false
  await poll
  if (process.env.BENCH_WAL_CPU) console.log(`cpu raw walsender: ${rawCpu} ms (last sample)`)
  // Drop the raw slot now: pg_recvlogical may still hold it for a moment after exiting, and a slot left behind
  // would keep the database (and WAL) from being dropped at the end.
  for (let i = 0; i < 50; i++) {
    const r = await pool.query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
      slot,
    ])
    if (r.rows.length === 0) break
    if (!r.rows[0]?.active) {
      await pool.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => {})
      continue
    }
    await new Promise((res) => setTimeout(res, 100))
  }
  return { seconds, tool }
}

/** Ours: from consumer start until its committed batches hold every change; then the changelog rows are counted. */
async function oursDecode(
  pool: pg.Pool,
  url: string,
  registry: Registry,
  slot: string,
  last: boolean,
): Promise<number> {
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
  // Done when the consumer's committed batches hold every change (counted from its per-batch log, then checked
  // against the table); the durable LSN is no stop signal, as trailing WAL past the last commit only moves on the
  // server's next keepalive.
  let written = 0
  let reached: () => void = () => {}
  const allWritten = new Promise<void>((resolve) => {
    reached = resolve
  })
  const debug = process.env.BENCH_WAL_DEBUG !== undefined
  let o0 = performance.now()
  const log = (o: unknown) => console.log(JSON.stringify({ t: Math.round(performance.now() - o0), ...(o as object) }))
  const perf =
    process.env.BENCH_WAL_PERF && last
      ? spawn('perf', ['record', '-e', 'cpu-clock', '-a', '-g', '-o', process.env.BENCH_WAL_PERF], { stdio: 'ignore' })
      : undefined
  if (perf) await new Promise((r) => setTimeout(r, 500))
  o0 = performance.now()
  const consumer = startWalConsumer({
    pool,
    registry,
    replicationUrl: url,
    slotName: slot,
    statusIntervalMs: 1000,
    ...(process.env.BENCH_WAL_BATCH ? { batchMaxEvents: envInt('BENCH_WAL_BATCH', 10_000, 1) } : {}),
    logger: {
      info: debug ? log : () => {},
      warn: log,
      error: log,
      debug: (o: unknown, msg?: string) => {
        if (debug) log(o)
        if (msg !== 'wal batch applied') return
        written += (o as { changelogRows: number }).changelogRows
        if (written >= changes) reached()
      },
    },
  })
  let seconds: number
  try {
    await allWritten
    seconds = (performance.now() - o0) / 1000
    if (perf) {
      perf.kill('SIGINT')
      await new Promise((r) => perf.on('exit', r))
    }
    if (cpu0) {
      const cpu1 = await cpuSample()
      for (const [k, v] of cpu1) console.log(`cpu ${k}: ${v - (cpu0.get(k) ?? 0)} ms`)
    }
  } finally {
    await consumer.stop()
    await pool.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => {})
  }
  const n = Number((await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM sync_changelog')).rows[0]?.n)
  if (n !== changes) throw new Error(`expected ${changes} changelog rows, found ${n}`)
  return seconds
}
