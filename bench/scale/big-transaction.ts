// One huge source transaction through the WAL consumer: a single UPDATE of N rows (default 1 000 000), captured
// exactly once with flat memory (pgoutput protocol 2 streaming: the transaction is spilled to a file while it runs
// and written at its commit in parts inside one database transaction). Run by bench/scale in its own process;
// prints `BIGTXN {json}`: rows, seconds from COMMIT to durable, changelog rows counted, this process's peak RSS.
// Usage: npx tsx bench/scale/big-transaction.ts [rows]   Env BENCH_BIGTXN_STREAMING=0: protocol 1 (for comparison).
import { randomBytes } from 'node:crypto'
import { runMigrations } from '../../packages/server/src/migrations/migrations.js'
import { Registry } from '../../packages/server/src/registry/registry.js'
import {
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  startWalConsumer,
} from '../../packages/server/src/wal/index.js'
import { createBenchDatabase } from '../lib.js'

const rows = Number.parseInt(process.argv[2] ?? '1000000', 10)
const streaming = process.env.BENCH_BIGTXN_STREAMING !== '0'
const db = await createBenchDatabase('bigtxn')
const SLOT = `bigtxn_${randomBytes(4).toString('hex')}`
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
  // Loaded before the slot exists: only the UPDATE below is captured.
  await pool.query(
    `INSERT INTO bench_items (user_id, v, title)
     SELECT ('00000000-0000-4000-8000-' || lpad((g % 1000)::text, 12, '0'))::uuid, g, 'item ' || g
       FROM generate_series(1, $1::int) g`,
    [rows],
  )
  const registry = new Registry().register({ tableName: 'bench_items', ownerColumn: 'user_id' })
  await ensurePublication(pool, registry, 'synchro_pub')
  await ensureReplicaIdentityFull(pool, registry)
  await ensureSlot(pool, SLOT)
  const consumer = startWalConsumer({ pool, registry, replicationUrl: url, slotName: SLOT, streaming })
  try {
    const u0 = performance.now()
    await pool.query('UPDATE bench_items SET v = v + 1')
    const committed = (await pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn
    const c0 = performance.now()
    await consumer.waitForLsn(committed as string, 3_600_000)
    const seconds = (performance.now() - c0) / 1000
    const counted = Number(
      (await pool.query<{ n: string }>('SELECT count(*)::text AS n FROM sync_changelog')).rows[0]?.n ?? 0,
    )
    const pgVersion = (await pool.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v
    const result = {
      rows,
      streaming,
      changelogRows: counted,
      updateSeconds: Math.round((c0 - u0) / 10) / 100,
      secondsAfterCommit: Math.round(seconds * 100) / 100,
      consumerPeakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
      pgVersion,
    }
    console.log(`BIGTXN ${JSON.stringify(result)}`)
    if (counted !== rows) throw new Error(`expected ${rows} changelog rows, found ${counted}`)
  } finally {
    await consumer.stop()
    await pool.query('SELECT pg_drop_replication_slot($1)', [SLOT]).catch(() => {})
  }
} finally {
  await db.close()
}
