import type { WalConsumer, WalConsumerStatus } from '@synchro/server'
import { changelogStats } from '@synchro/server/internal'
import type pg from 'pg'
import { Gauge, type Registry } from 'prom-client'

/** Above this many rows (the planner's estimate) the changelog row gauge reports the estimate. */
const EXACT_COUNT_BELOW = 100_000

interface DbSnapshot {
  up: boolean
  rows: number
  min: number
  max: number
  slotLag: number
  slotActive: boolean
}

async function readDatabase(pool: pg.Pool, slotName: string): Promise<DbSnapshot> {
  try {
    // One after the other: a scrape holds at most one pooled connection.
    const log = await changelogStats(pool, { exactBelow: EXACT_COUNT_BELOW })
    const slot = await pool.query<{ lag: string | null; active: boolean }>(
      `SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint::text AS lag, active
         FROM pg_replication_slots WHERE slot_name = $1`,
      [slotName],
    )
    const s = slot.rows[0]
    return {
      up: true,
      rows: log.entries,
      min: log.minSeq ?? 0,
      max: log.headSeq ?? 0,
      slotLag: s?.lag === null || s?.lag === undefined ? -1 : Number(s.lag),
      slotActive: s?.active === true,
    }
  } catch {
    return { up: false, rows: 0, min: 0, max: 0, slotLag: -1, slotActive: false }
  }
}

/**
 * Database gauges, read on scrape. prom-client collects all metrics of a scrape concurrently, so each gauge awaits
 * one shared read per scrape. The changelog's row count is exact for small (or never analysed) changelogs, else the
 * planner's estimate: count(*) over millions of rows on every scrape would load the database.
 */
export function registerDatabaseGauges(registers: Registry[], pool: pg.Pool, slotName: string): void {
  let pending: Promise<DbSnapshot> | undefined
  const snapshot = (): Promise<DbSnapshot> => {
    pending ??= readDatabase(pool, slotName).finally(() => {
      pending = undefined
    })
    return pending
  }
  const dbGauge = (name: string, help: string, pick: (s: DbSnapshot) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        this.set(pick(await snapshot()))
      },
    })
  dbGauge('synchro_database_up', '1 when the scrape could query PostgreSQL.', (s) => (s.up ? 1 : 0))
  dbGauge('synchro_changelog_rows', 'Rows in sync_changelog (estimate above 100k).', (s) => s.rows)
  dbGauge('synchro_changelog_min_seq', 'Lowest seq in sync_changelog (0 when empty).', (s) => s.min)
  dbGauge('synchro_changelog_max_seq', 'Highest seq in sync_changelog (0 when empty).', (s) => s.max)
  dbGauge(
    'synchro_wal_lag_bytes',
    "WAL the replication slot holds back: current WAL position minus the slot's confirmed position (-1 when the slot is missing).",
    (s) => s.slotLag,
  )
  dbGauge('synchro_wal_slot_active', '1 when some consumer is streaming from the replication slot.', (s) =>
    s.slotActive ? 1 : 0,
  )
}

/** The local WAL consumer's view, no database needed. */
export function registerConsumerGauges(registers: Registry[], consumer: () => WalConsumer | undefined): void {
  const consumerGauge = (name: string, help: string, pick: (s: WalConsumerStatus | undefined) => number | null) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const v = pick(consumer()?.status())
        if (v !== null) this.set(v)
      },
    })
  consumerGauge('synchro_wal_consumer_leader', '1 when the WAL consumer in this process holds the leader lock.', (s) =>
    s?.leader ? 1 : 0,
  )
  consumerGauge('synchro_wal_consumer_running', '1 when the WAL consumer in this process is streaming.', (s) =>
    s?.running ? 1 : 0,
  )
  consumerGauge(
    'synchro_wal_consumer_lag_bytes',
    'Server WAL position seen by the consumer in this process minus its durable position (leader only).',
    (s) => s?.lagBytes ?? null,
  )
}
