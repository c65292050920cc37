/**
 * `sync_clients`: the only module that writes SQL against it. Register upserts a row, every request finds (push:
 * touches) it in the statement that opens its transaction, pull and snapshot advance the stored checkpoint,
 * compaction deactivates stale rows and reads the slowest checkpoint, operators read counts.
 */
import type pg from 'pg'
import { sqlRfc3339 } from '../util/time.js'

/** A row of sync_clients as the engine needs it. */
export interface ClientRow {
  /** Row id (uuid as text). */
  id: string
  userId: string
  clientId: string
  bucketSubs: string[]
  lastPullSeq: number | null
  /** µs RFC 3339 text, untrimmed; null when the client never synced. */
  lastSyncAt: string | null
  isActive: boolean
}

/** Default bucket subscriptions of a user (§2.1). */
export function defaultSubscriptions(userId: string): string[] {
  return [`user:${userId}`, 'global']
}

/** `defaultSubscriptions` in SQL, for a user id placeholder. */
export function defaultSubscriptionsSql(user: string): string {
  return `ARRAY['user:' || ${user}, 'global']::text[]`
}

/** SQL: the subscriptions of the client row `c` as `ClientRow.bucketSubs` has them (the defaults when it has none). */
export function clientSubscriptionsSql(user: string): string {
  return `CASE WHEN cardinality(c.bucket_subs) > 0 THEN c.bucket_subs ELSE ${defaultSubscriptionsSql(user)} END`
}

/** The join exposing the caller's client row as `c` (NULLs when there is none), for user and client placeholders. */
export function clientRowJoin(user: string, client: string): string {
  return `LEFT JOIN sync_clients c ON c.user_id = ${user} AND c.client_id = ${client}`
}

/** Binds a value as the next statement parameter and returns its placeholder (`$n`). */
export type Bind = (value: unknown) => string

/**
 * How the statement opening a request transaction reaches the caller's client row: an optional data-modifying CTE
 * named `c` and the join that exposes `c` (at most one row). The statement selects `CLIENT_COLUMNS` from it.
 */
export interface ClientSource {
  with?: string
  join: string
}

/** What the opening statement selects of the client row (NULLs when there is none). */
export const CLIENT_COLUMNS = `c.id::text AS client_row_id, c.bucket_subs, c.last_pull_seq::text AS last_pull_seq,
       ${sqlRfc3339('c.last_sync_at')} AS last_sync_at, c.is_active`

/** The columns of `CLIENT_COLUMNS` as the driver returns them. */
export interface ClientColumns {
  client_row_id: string | null
  bucket_subs: string[] | null
  last_pull_seq: string | null
  last_sync_at: string | null
  is_active: boolean | null
}

/** The row of `CLIENT_COLUMNS`, or undefined when the statement found (or wrote) none. */
export function clientRowOf(r: ClientColumns, userId: string, clientId: string): ClientRow | undefined {
  if (r.client_row_id === null) return undefined
  const subs = r.bucket_subs ?? []
  return {
    id: r.client_row_id,
    userId,
    clientId,
    bucketSubs: subs.length > 0 ? subs : defaultSubscriptions(userId),
    lastPullSeq: r.last_pull_seq === null ? null : Number(r.last_pull_seq),
    lastSyncAt: r.last_sync_at,
    isActive: r.is_active === true,
  }
}

/** Pull, snapshot, events: read the row, change nothing. */
export function readClient(userId: string, clientId: string): (bind: Bind) => ClientSource {
  return (bind) => ({ join: clientRowJoin(bind(userId), bind(clientId)) })
}

/** Push: mark the push on the row (§2.1: last_push_at, last_sync_at) in the push's own transaction. */
export function touchClientForPush(userId: string, clientId: string): (bind: Bind) => ClientSource {
  return (bind) => ({
    with: `c AS (
  UPDATE sync_clients SET last_push_at = now(), last_sync_at = now()
   WHERE user_id = ${bind(userId)} AND client_id = ${bind(clientId)}
  RETURNING id, bucket_subs, last_pull_seq, last_sync_at, is_active
)`,
    join: 'LEFT JOIN c ON true',
  })
}

/** What register stores about a client. */
export interface Registration {
  userId: string
  clientId: string
  clientName: string | null
  platform: string
  appVersion: string
  /** Active clients one user may have (0 = unbounded). */
  maxClientsPerUser: number
}

/**
 * Register: a known client always re-registers (and is reactivated); a new one only while the user has fewer active
 * clients than the cap (concurrent registrations may overshoot it by the per-user in-flight bound). No row comes back
 * when the cap refuses.
 */
export function upsertClient(reg: Registration): (bind: Bind) => ClientSource {
  return (bind) => {
    const user = bind(reg.userId)
    const client = bind(reg.clientId)
    const max = `${bind(reg.maxClientsPerUser)}::int`
    return {
      with: `c AS (
  INSERT INTO sync_clients (user_id, client_id, client_name, platform, app_version, bucket_subs)
  SELECT ${user}, ${client}, ${bind(reg.clientName)}, ${bind(reg.platform)}, ${bind(reg.appVersion)},
         ${bind(defaultSubscriptions(reg.userId))}::text[]
   WHERE ${max} = 0
      OR EXISTS (SELECT 1 FROM sync_clients WHERE user_id = ${user} AND client_id = ${client})
      OR (SELECT count(*) FROM sync_clients WHERE user_id = ${user} AND is_active) < ${max}
  ON CONFLICT (user_id, client_id) DO UPDATE
    SET client_name = EXCLUDED.client_name, platform = EXCLUDED.platform, app_version = EXCLUDED.app_version,
        is_active = true, updated_at = now()
  RETURNING id, bucket_subs, last_pull_seq, last_sync_at, is_active
)`,
      join: 'LEFT JOIN c ON true',
    }
  }
}

/**
 * The pull page's checkpoint advance, as a CTE (`name AS (UPDATE …)`) of the page statement: it commits with exactly
 * what the page read, and a page that fails advances nothing. `stored` is the checkpoint to store (never moves down),
 * `caughtUp` whether the client found nothing more to read; `when` gates the whole update (a served pull).
 * Decision 36 (staleness follows pull progress): `last_progress_at` moves when the stored checkpoint moved or the
 * client is caught up; a client re-reading old pages makes no progress.
 */
export function advancePullCte(
  name: string,
  p: { rowId: string; stored: string; caughtUp: string; when: string },
): string {
  const progress = `(${p.stored}::bigint > coalesce(last_pull_seq, -1) OR ${p.caughtUp})`
  return `${name} AS (
  UPDATE sync_clients
     SET last_pull_seq = GREATEST(last_pull_seq, ${p.stored}::bigint), last_pull_at = now(), last_sync_at = now(),
         last_progress_at = CASE WHEN ${progress} THEN now() ELSE last_progress_at END
   WHERE id = ${p.rowId}::uuid AND ${p.when}
)`
}

/**
 * Final snapshot page only (§3 E 63, 64): the stored checkpoint never moves down; a completed snapshot reactivates the
 * client. `last_sync_at` is refreshed even when the checkpoint does not move: otherwise a client reactivated here
 * would be deactivated again by the next compaction run (its last sync still looking old).
 */
export async function completeSnapshot(db: pg.Pool | pg.PoolClient, rowId: string, checkpoint: number): Promise<void> {
  await db.query(
    `UPDATE sync_clients
        SET last_pull_seq = GREATEST(last_pull_seq, $2::bigint), last_pull_at = now(), last_sync_at = now(),
            last_progress_at = now(), is_active = true
      WHERE id = $1`,
    [rowId, checkpoint],
  )
}

/**
 * Decision 36: a client is stale when its pull checkpoint has not advanced (nor been caught up) within the threshold,
 * whatever else it sends — pushes, empty pushes, registers and event streams refresh `last_sync_at` but not
 * `last_progress_at`, so a client that only pushes cannot pin compaction. Rows from before that column existed fall
 * back to the last pull, then the last sync. §3 I 114: clients that never synced are never stale. `$1`: threshold ms.
 */
const STALE = `coalesce(last_progress_at, last_pull_at, last_sync_at) < now() - ($1::double precision * interval '1 millisecond')`

/** Deactivates the active clients stale for `thresholdMs`; returns how many. */
export async function deactivateStaleClients(db: pg.Pool | pg.PoolClient, thresholdMs: number): Promise<number> {
  const res = await db.query(
    `UPDATE sync_clients SET is_active = false, updated_at = now() WHERE is_active AND ${STALE}`,
    [thresholdMs],
  )
  return res.rowCount ?? 0
}

/**
 * §3 I 115: the slowest active client's checkpoint; 0 when no active client has one. Stale clients are left out here
 * too: a re-register between deactivation and this read reactivates a client without any pull progress, and must
 * not pin.
 */
export async function slowestCheckpoint(db: pg.Pool | pg.PoolClient, thresholdMs: number): Promise<number> {
  const { rows } = await db.query<{ seq: string }>(
    `SELECT coalesce(min(last_pull_seq), 0)::text AS seq
       FROM sync_clients
      WHERE is_active AND last_pull_seq IS NOT NULL AND NOT coalesce(${STALE}, false)`,
    [thresholdMs],
  )
  return Number(rows[0]?.seq ?? 0)
}

/** Client counts of one (platform, app version) pair; `stale` counts active clients stale as compaction judges. */
export interface ClientCounts {
  platform: string
  version: string
  total: number
  active: number
  stale: number
}

/** Client counts per (platform, app version), most clients first (operators' status). */
export async function clientStats(db: pg.Pool | pg.PoolClient, staleThresholdMs: number): Promise<ClientCounts[]> {
  const { rows } = await db.query<{ platform: string; version: string; total: string; active: string; stale: string }>(
    `SELECT platform, app_version AS version, count(*)::text AS total,
            count(*) FILTER (WHERE is_active)::text AS active,
            count(*) FILTER (WHERE is_active AND ${STALE})::text AS stale
       FROM sync_clients GROUP BY platform, app_version ORDER BY count(*) DESC, platform, app_version`,
    [staleThresholdMs],
  )
  return rows.map((r) => ({
    platform: r.platform,
    version: r.version,
    total: Number(r.total),
    active: Number(r.active),
    stale: Number(r.stale),
  }))
}
