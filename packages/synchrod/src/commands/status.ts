import { changelogInstalled, changelogStats, clientStats, leaderLockKey } from '@synchro/server/internal'
import type pg from 'pg'
import type { Settings } from '../config.js'
import { type Database, describeUrl, openDatabase, StartupError } from '../database.js'
import type { Log } from '../logger.js'

/** Registered clients of one platform and app version. */
export interface ClientGroup {
  platform: string
  appVersion: string
  total: number
  active: number
}

/** A WAL change whose buckets could not be computed (sync_rule_failures). */
export interface RuleFailure {
  id: number
  table: string
  recordId: string
  error: string
  at: string
}

export interface StatusReport {
  database: string
  clients: {
    total: number
    active: number
    /** Deactivated by compaction (they must snapshot again). */
    inactive: number
    /** Still active, but without pull progress for `staleThresholdMs`: the next compaction run deactivates them. */
    stale: number
    staleThresholdMs: number
    /** Per platform and app version, largest group first. */
    groups: ClientGroup[]
  }
  changelog: {
    rows: number
    minSeq: number | null
    /** The head: the newest captured change. */
    maxSeq: number | null
    /** Compaction boundary: entries up to here were removed; a client behind it must snapshot. */
    maxCompactedSeq: number
    /** Table plus indexes, in bytes. */
    sizeBytes: number
  }
  slot: {
    name: string
    exists: boolean
    active: boolean
    /** Current WAL position minus the slot's confirmed position. */
    lagBytes: number | null
    /**
     * How long the consumer takes to confirm WAL (pg_stat_replication's flush lag for the slot's walsender):
     * 0 once it has caught up and is idle, null when nobody streams from the slot.
     */
    lagSeconds: number | null
    confirmedFlushLsn: string | null
  }
  ruleFailures: {
    total: number
    /** In the last 24 hours. */
    lastDay: number
    /** The newest few. */
    recent: RuleFailure[]
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

export interface StatusOptions {
  /** Clients not synced for this long count as stale (compaction's threshold). */
  staleThresholdMs: number
}

/** Rule failures listed in full. */
const RECENT_FAILURES = 5

/**
 * Reads the deployment's state from the database alone, so it works from any machine, leader or not. The daemon's
 * status page shows the same report.
 */
export async function readStatus(
  pool: pg.Pool,
  slotName: string,
  database: string,
  opts: StatusOptions,
): Promise<StatusReport> {
  if (!(await changelogInstalled(pool))) {
    throw new StartupError(`no Synchro tables in ${database}: start synchrod once, or run synchrod migrate --apply`)
  }
  // Stale as compaction defines it (the server's clients module): no pull progress within the threshold.
  const groups = await clientStats(pool, opts.staleThresholdMs)
  const sum = (pick: (g: (typeof groups)[number]) => number) => groups.reduce((n, g) => n + pick(g), 0)
  const log = await changelogStats(pool)
  const slot = await one<{
    active: boolean
    lag: string | null
    secs: string | null
    lsn: string | null
    pid: number | null
  }>(
    pool,
    `SELECT s.active, (pg_current_wal_lsn() - s.confirmed_flush_lsn)::bigint::text AS lag,
            CASE WHEN s.active THEN extract(epoch FROM coalesce(r.flush_lag, interval '0'))::text END AS secs,
            s.confirmed_flush_lsn::text AS lsn, s.active_pid AS pid
       FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
      WHERE s.slot_name = $1`,
    [slotName],
  )
  const failures = await one<{ total: string; day: string }>(
    pool,
    `SELECT count(*)::text AS total, count(*) FILTER (WHERE created_at > now() - interval '1 day')::text AS day
       FROM sync_rule_failures`,
  )
  const recent = (
    await pool.query<{ id: string; table_name: string; record_id: string; error_text: string; at: string }>(
      `SELECT id::text, table_name, record_id, error_text,
              to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at
         FROM sync_rule_failures ORDER BY id DESC LIMIT $1`,
      [RECENT_FAILURES],
    )
  ).rows
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
    clients: {
      total: sum((g) => g.total),
      active: sum((g) => g.active),
      inactive: sum((g) => g.total) - sum((g) => g.active),
      stale: sum((g) => g.stale),
      staleThresholdMs: opts.staleThresholdMs,
      groups: groups.map((g) => ({
        platform: g.platform,
        appVersion: g.version,
        total: g.total,
        active: g.active,
      })),
    },
    changelog: {
      rows: log.entries,
      minSeq: log.minSeq,
      maxSeq: log.headSeq,
      maxCompactedSeq: log.compactedSeq,
      sizeBytes: log.sizeBytes,
    },
    slot: {
      name: slotName,
      exists: slot !== undefined,
      active: slot?.active ?? false,
      lagBytes: num(slot?.lag),
      lagSeconds: num(slot?.secs),
      confirmedFlushLsn: slot?.lsn ?? null,
    },
    ruleFailures: {
      total: Number(failures?.total ?? 0),
      lastDay: Number(failures?.day ?? 0),
      recent: recent.map((f) => ({
        id: Number(f.id),
        table: f.table_name,
        recordId: f.record_id,
        error: f.error_text,
        at: f.at,
      })),
    },
    consumer: {
      storedLsn: stored?.lsn ?? null,
      storedAt: stored?.at ?? null,
      leader,
      streamingPid: slot?.pid ?? null,
    },
  }
}

export function bytes(n: number | null): string {
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
    `clients         ${s.clients.total} (${s.clients.active} active, ${s.clients.stale} stale, ${s.clients.inactive} deactivated)`,
    ...s.clients.groups.map(
      (g) => `${`  ${g.platform || '?'} ${g.appVersion || '?'}`.padEnd(16)}${g.total} (${g.active} active)`,
    ),
    `changelog       ${s.changelog.rows} rows, ${bytes(s.changelog.sizeBytes)}, seq ${s.changelog.minSeq ?? '-'}..${s.changelog.maxSeq ?? '-'} (compacted through ${s.changelog.maxCompactedSeq})`,
    `slot            ${s.slot.name}: ${s.slot.exists ? `${s.slot.active ? 'active' : 'inactive'}, lag ${bytes(s.slot.lagBytes)}${s.slot.lagSeconds === null ? '' : ` / ${s.slot.lagSeconds.toFixed(1)} s`}, confirmed ${s.slot.confirmedFlushLsn}` : 'missing'}`,
    `rule failures   ${s.ruleFailures.total} (${s.ruleFailures.lastDay} in the last day)`,
    `consumer leader ${leader}`,
    `stored position ${c.storedLsn ?? 'none'}${c.storedAt ? ` at ${c.storedAt}` : ''}`,
    '',
  ].join('\n')
}

/** How the report names the database (never with credentials). */
export function databaseLabel(db: Database, o: { databaseUrl?: string | undefined; dataDir: string }): string {
  return db.embedded || !o.databaseUrl ? `embedded (${o.dataDir})` : describeUrl(db.url)
}

/** `synchrod status [--json]`. */
export async function status(settings: Settings, log: Log): Promise<void> {
  const o = settings.options
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log })
  try {
    const report = await readStatus(db.pool, o.slotName, databaseLabel(db, o), {
      staleThresholdMs: o.compactionStaleThresholdMs,
    })
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : statusText(report))
  } finally {
    await db.close()
  }
}
