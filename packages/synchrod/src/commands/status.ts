import { leaderLockKey } from '@synchro/server'
import type pg from 'pg'
import type { Settings } from '../config.js'
import { describeUrl, openDatabase, StartupError } from '../database.js'
import type { Log } from '../logger.js'

export interface StatusReport {
  database: string
  clients: { total: number; active: number }
  changelog: { rows: number; minSeq: number | null; maxSeq: number | null; maxCompactedSeq: number }
  slot: {
    name: string
    exists: boolean
    active: boolean
    /** Current WAL position minus the slot's confirmed position. */
    lagBytes: number | null
    confirmedFlushLsn: string | null
  }
  consumer: {
    /** Durable position the consumer stored in sync_wal_position, and when. */
    storedLsn: string | null
    storedAt: string | null
    /** The session holding the leader advisory lock (pg_locks), when one does. */
    leader: { pid: number; clientAddr: string | null; applicationName: string; since: string | null } | null
    /** The backend streaming from the slot (pg_replication_slots.active_pid). */
    streamingPid: number | null
  }
}

/** Splits a signed 64-bit advisory-lock key into pg_locks' (classid, objid) pair. */
function lockParts(key: string): [string, string] {
  const u = BigInt.asUintN(64, BigInt(key))
  return [(u >> 32n).toString(), (u & 0xffffffffn).toString()]
}

async function one<T extends pg.QueryResultRow>(
  pool: pg.Pool,
  sql: string,
  params: unknown[] = [],
): Promise<T | undefined> {
  return (await pool.query<T>(sql, params)).rows[0]
}

/** Reads the deployment's state from the database alone, so it works from any machine, leader or not. */
export async function readStatus(pool: pg.Pool, slotName: string, database: string): Promise<StatusReport> {
  const installed = await one<{ ok: boolean }>(pool, `SELECT to_regclass('sync_changelog') IS NOT NULL AS ok`)
  if (!installed?.ok) {
    throw new StartupError(`no Synchro tables in ${database}: start synchrod once, or run synchrod migrate --apply`)
  }
  const clients = await one<{ total: string; active: string }>(
    pool,
    `SELECT count(*)::text AS total, count(*) FILTER (WHERE is_active)::text AS active FROM sync_clients`,
  )
  const log = await one<{ rows: string; min: string | null; max: string | null; compacted: string | null }>(
    pool,
    `SELECT count(*)::text AS rows, min(seq)::text AS min, max(seq)::text AS max,
            (SELECT max_compacted_seq::text FROM sync_compaction_state) AS compacted
       FROM sync_changelog`,
  )
  const slot = await one<{ active: boolean; lag: string | null; lsn: string | null; pid: number | null }>(
    pool,
    `SELECT active, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint::text AS lag,
            confirmed_flush_lsn::text AS lsn, active_pid AS pid
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slotName],
  )
  const stored = await one<{ lsn: string; at: string }>(
    pool,
    `SELECT (('0/0'::pg_lsn) + confirmed_lsn)::text AS lsn, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at
       FROM sync_wal_position WHERE slot_name = $1`,
    [slotName],
  )
  // The consumer holds a session-level advisory lock while it leads (pg_locks shows it on every instance).
  const [classid, objid] = lockParts(leaderLockKey(slotName))
  const holder = await one<{ pid: number; addr: string | null; app: string; since: string | null }>(
    pool,
    `SELECT l.pid, host(a.client_addr) AS addr, a.application_name AS app,
            to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS since
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.classid = $1::oid AND l.objid = $2::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [classid, objid],
  )
  const leader = holder
    ? { pid: holder.pid, clientAddr: holder.addr, applicationName: holder.app, since: holder.since }
    : null
  const num = (v: string | null | undefined) => (v === null || v === undefined ? null : Number(v))
  return {
    database,
    clients: { total: Number(clients?.total ?? 0), active: Number(clients?.active ?? 0) },
    changelog: {
      rows: Number(log?.rows ?? 0),
      minSeq: num(log?.min),
      maxSeq: num(log?.max),
      maxCompactedSeq: Number(log?.compacted ?? 0),
    },
    slot: {
      name: slotName,
      exists: slot !== undefined,
      active: slot?.active ?? false,
      lagBytes: num(slot?.lag),
      confirmedFlushLsn: slot?.lsn ?? null,
    },
    consumer: {
      storedLsn: stored?.lsn ?? null,
      storedAt: stored?.at ?? null,
      leader,
      streamingPid: slot?.pid ?? null,
    },
  }
}

function bytes(n: number | null): string {
  if (n === null) return 'n/a'
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`
  return `${(n / 1024 / 1024).toFixed(1)} MiB`
}

export function statusText(s: StatusReport): string {
  const c = s.consumer
  const leader = c.leader
    ? `pid ${c.leader.pid}${c.leader.clientAddr ? ` from ${c.leader.clientAddr}` : ''}${c.leader.since ? ` (connected ${c.leader.since})` : ''}`
    : 'none (no consumer holds the leader lock)'
  return [
    `database        ${s.database}`,
    `clients         ${s.clients.total} (${s.clients.active} active)`,
    `changelog       ${s.changelog.rows} rows, seq ${s.changelog.minSeq ?? '-'}..${s.changelog.maxSeq ?? '-'} (compacted through ${s.changelog.maxCompactedSeq})`,
    `slot            ${s.slot.name}: ${s.slot.exists ? `${s.slot.active ? 'active' : 'inactive'}, lag ${bytes(s.slot.lagBytes)}, confirmed ${s.slot.confirmedFlushLsn}` : 'missing'}`,
    `consumer leader ${leader}`,
    `stored position ${c.storedLsn ?? 'none'}${c.storedAt ? ` at ${c.storedAt}` : ''}`,
    '',
  ].join('\n')
}

/** `synchrod status [--json]`. */
export async function status(settings: Settings, log: Log): Promise<void> {
  const o = settings.options
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log })
  try {
    const where = db.embedded || !o.databaseUrl ? `embedded (${o.dataDir})` : describeUrl(db.url)
    const report = await readStatus(db.pool, o.slotName, where)
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : statusText(report))
  } finally {
    await db.close()
  }
}
