import { createHash } from 'node:crypto'
import type pg from 'pg'
import type { Logger } from '../util/log.js'
import { quoteIdent } from '../util/sql.js'

/**
 * The DDL watch (Decision 12): an event trigger that counts committed DDL, so a request can tell "no DDL since the
 * contract was built" from one small table instead of reading the catalogs (pg_class, pg_attribute, pg_attrdef,
 * pg_index, pg_type) on every request.
 *
 * `sync_ddl_epoch` holds one counter per backend pid. The trigger runs inside the DDL's own transaction and adds 1 to
 * its session's row, so the bump commits (or rolls back) with the DDL, and the sum of the counters changes exactly when
 * some DDL committed. Per-pid rows keep concurrent DDL transactions from waiting on one another (one shared row would
 * serialise every DDL in the database behind the longest open migration, and could deadlock two of them). Live
 * backends never share a pid, so two transactions never update the same row; the table holds one row per pid that ran
 * DDL since an engine last folded the rows of exited backends (`foldDdlEpoch`).
 *
 * Creating an event trigger needs a superuser (or a managed service's equivalent). Without one the engine keeps
 * reading the catalog fingerprint on every request: correct, only slower. The trigger fires ALWAYS (also under
 * `session_replication_role = replica`, which pg_restore's --disable-triggers sets); a disabled or dropped trigger
 * makes the epoch read NULL, and NULL never matches a cached contract, so the engine falls back to the catalog rather
 * than trusting a counter nobody bumps.
 */
/** The event trigger's name for the sync_* tables in `schema` (one per schema: installs in two schemas stay apart). */
export function ddlWatchTrigger(schema: string): string {
  return schema === 'public'
    ? 'sync_ddl_epoch'
    : `sync_ddl_epoch_${createHash('md5').update(schema).digest('hex').slice(0, 16)}`
}

/**
 * The trigger function (`[0]`, with its owner: `[1]`) and the event trigger (`[2..]`), for the schema the sync_*
 * tables live in. Idempotent (printed by `synchrod migrate`).
 * - Temporary objects alone do not count (apps that create temp tables per request would otherwise make every
 *   request read the catalogs). A DROP reports no created objects at `ddl_command_end`: the drops of `DROP_TAGS` are
 *   counted by a second trigger, on `sql_drop`, which sees what went (`pg_event_trigger_dropped_objects`) and counts
 *   only when an object the command named was permanent (what went with it depends on it, so is temporary too —
 *   except that PostgreSQL reports a temporary view's rule as permanent). The first trigger leaves them to it only
 *   while that trigger exists and fires always (checked at each DROP); otherwise every DROP counts, as before. No flag
 *   passes between the two: a session could forge one and hide real DDL.
 * - The function runs as the counter table's owner, not as the superuser who created it: the table's owner can put
 *   triggers on the table, and those would otherwise run with superuser rights on every DDL.
 * - Should the counter table be gone, it gives up quietly rather than failing every DDL in the database (the engine
 *   then reads the catalogs). A check, not an EXCEPTION block: that would open a subtransaction per DDL.
 */
export function ddlWatchSql(schema: string): string[] {
  const table = `${quoteIdent(schema)}.sync_ddl_epoch`
  const fn = `${quoteIdent(schema)}.sync_ddl_epoch_bump`
  const trigger = quoteIdent(ddlWatchTrigger(schema))
  const drop = quoteIdent(ddlDropTrigger(schema))
  const dropTrigger = ddlDropTrigger(schema).replaceAll("'", "''")
  const fnText = fn.replaceAll("'", "''")
  const tableText = table.replaceAll("'", "''")
  return [
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $sync$
BEGIN
  IF TG_EVENT = 'sql_drop' THEN
    IF TG_TAG NOT IN (${DROP_TAGS}) OR NOT EXISTS (SELECT FROM pg_event_trigger_dropped_objects() WHERE original AND NOT is_temporary) THEN
      RETURN;
    END IF;
  ELSIF TG_TAG IN (${DROP_TAGS}) THEN
    IF EXISTS (SELECT FROM pg_event_trigger WHERE evtname = '${dropTrigger}' AND evtevent = 'sql_drop'
                AND evtenabled = 'A' AND evtfoid = '${fnText}()'::regprocedure) THEN
      RETURN;
    END IF;
  ELSIF EXISTS (SELECT FROM pg_event_trigger_ddl_commands())
     AND NOT EXISTS (SELECT FROM pg_event_trigger_ddl_commands() WHERE schema_name IS DISTINCT FROM 'pg_temp') THEN
    RETURN;
  END IF;
  IF to_regclass('${tableText}') IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO ${table} AS e (pid, n) VALUES (pg_backend_pid(), 1)
    ON CONFLICT (pid) DO UPDATE SET n = e.n + 1;
END
$sync$`,
    `DO $sync$ BEGIN
  EXECUTE format('ALTER FUNCTION ${fn.replaceAll("'", "''")}() OWNER TO %I',
    (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = '${tableText}'::regclass));
END $sync$`,
    `DROP EVENT TRIGGER IF EXISTS ${trigger}`,
    `CREATE EVENT TRIGGER ${trigger} ON ddl_command_end EXECUTE FUNCTION ${fn}()`,
    `ALTER EVENT TRIGGER ${trigger} ENABLE ALWAYS`,
    `DROP EVENT TRIGGER IF EXISTS ${drop}`,
    `CREATE EVENT TRIGGER ${drop} ON sql_drop WHEN TAG IN (${DROP_TAGS}) EXECUTE FUNCTION ${fn}()`,
    `ALTER EVENT TRIGGER ${drop} ENABLE ALWAYS`,
  ]
}

/** The statements of `ddlWatchSql` that (re)create the `sql_drop` trigger. */
const DROP_TRIGGER_STATEMENTS = 3

/**
 * DROP commands whose drops the `sql_drop` trigger counts (only when a permanent object went): the ones a temporary
 * table, its indexes, sequences and views are dropped with.
 */
const DROP_TAGS = ['DROP TABLE', 'DROP INDEX', 'DROP SEQUENCE', 'DROP VIEW'].map((t) => `'${t}'`).join(', ')

/** The `sql_drop` trigger of the watch for `schema` (see `ddlWatchSql`). */
export function ddlDropTrigger(schema: string): string {
  return `${ddlWatchTrigger(schema)}_drop`
}

export type DdlWatchInstall = { installed: true } | { installed: false; reason: string; sql: string[] }

/** Said once at start (engine, synchrod) when the migration could not install the watch. */
export function warnNoDdlWatch(logger: Pick<Logger, 'warn'>, install: DdlWatchInstall): void {
  if (install.installed) return
  logger.warn(
    { reason: install.reason, sql: install.sql.join(';\n') },
    'no DDL watch (needs a superuser): every request reads the catalogs to notice schema changes — run the sql as a superuser, then restart, to avoid that (an engine looks for the watch when it starts)',
  )
}

/**
 * Installs (or updates) the watch in the migration transaction `db`, under a savepoint: without the privilege the
 * rest of the migration still commits. The function is always brought up to date (its owner — the table's owner —
 * may do that); an existing trigger is left as it is, as an administrator may have disabled it on purpose (the engine
 * then reads the catalogs, see `findDdlWatch`). An install from before the `sql_drop` trigger gets it when the
 * migration may create it; until then the function counts every DROP.
 */
export async function installDdlWatch(db: pg.PoolClient): Promise<DdlWatchInstall> {
  const schema = (await db.query<{ s: string }>('SELECT current_schema() AS s')).rows[0]?.s ?? 'public'
  const { rows } = await db.query<{ name: string }>(
    'SELECT evtname::text AS name FROM pg_event_trigger WHERE evtname = ANY($1)',
    [[ddlWatchTrigger(schema), ddlDropTrigger(schema)]],
  )
  const found = new Set(rows.map((r) => r.name))
  const sql = ddlWatchSql(schema)
  if (!found.has(ddlWatchTrigger(schema))) {
    const denied = await underSavepoint(db, sql)
    return denied === undefined ? { installed: true } : { installed: false, reason: denied, sql }
  }
  await underSavepoint(db, sql.slice(0, 2))
  if (!found.has(ddlDropTrigger(schema))) await underSavepoint(db, sql.slice(-DROP_TRIGGER_STATEMENTS))
  return { installed: true }
}

/** Runs `statements` under a savepoint; the message of a missing privilege (42501), rolled back, else undefined. */
async function underSavepoint(db: pg.PoolClient, statements: readonly string[]): Promise<string | undefined> {
  await db.query('SAVEPOINT sync_ddl_watch')
  try {
    for (const statement of statements) await db.query(statement)
    await db.query('RELEASE SAVEPOINT sync_ddl_watch')
    return undefined
  } catch (err) {
    await db.query('ROLLBACK TO SAVEPOINT sync_ddl_watch')
    if ((err as { code?: string }).code !== '42501') throw err
    return (err as Error).message
  }
}

/**
 * Folds the counters of backends that have exited into one row (pid 0), keeping their sum, and returns how many rows
 * went. Without it the table keeps one row per pid that ever ran DDL — with connections that come and go, thousands —
 * and every request's token sums them all. The sum is what tells DDL apart (it grows by one per committed DDL and a
 * fold keeps it), so no token of the past can come back; the count changes, which costs each engine one catalog read.
 * Rows locked by a prepared (two-phase) transaction are skipped, never waited for; a backend that reuses a folded pid
 * starts a fresh row.
 */
export async function foldDdlEpoch(db: pg.Pool | pg.PoolClient): Promise<number> {
  const { rows } = await db.query<{ folded: number }>(
    `WITH gone AS (
       DELETE FROM sync_ddl_epoch
        WHERE pid IN (SELECT e.pid FROM sync_ddl_epoch e
                       WHERE e.pid <> 0 AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = e.pid)
                         FOR UPDATE SKIP LOCKED)
       RETURNING n
     ), base AS (
       INSERT INTO sync_ddl_epoch AS e (pid, n) SELECT 0, sum(n) FROM gone HAVING count(*) > 0
         ON CONFLICT (pid) DO UPDATE SET n = e.n + EXCLUDED.n
     )
     SELECT count(*)::int AS folded FROM gone`,
  )
  return rows[0]?.folded ?? 0
}

/** A trigger the engine may trust: it fires always and bumps the counter table the engine's statements read. */
export interface DdlWatch {
  trigger: string
  /** The trigger function's oid: a trigger re-pointed elsewhere no longer counts. */
  fn: number
}

/**
 * The DDL watch of the sync_* tables the engine's connections see (their search_path), or undefined when there is
 * none to trust: no trigger, not firing always, or bumping another schema's counters.
 */
export async function findDdlWatch(db: pg.Pool | pg.PoolClient): Promise<DdlWatch | undefined> {
  const { rows } = await db.query<{ evtname: string; fn: number }>(
    `SELECT t.evtname::text, t.evtfoid::int AS fn
       FROM pg_event_trigger t
       JOIN pg_proc p ON p.oid = t.evtfoid AND p.proname = 'sync_ddl_epoch_bump'
      WHERE t.evtenabled = 'A' AND t.evtevent = 'ddl_command_end'
        AND p.pronamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass('sync_ddl_epoch'))`,
  )
  const row = rows[0]
  return row ? { trigger: row.evtname, fn: row.fn } : undefined
}

/**
 * SQL expression (text): the schema token of the DDL watch, or NULL when `watch`'s trigger is gone, re-pointed or no
 * longer firing always (then nothing may be trusted: see above). The token holds
 * - the sum and count of the counters (the sum changes exactly when DDL committed);
 * - the trigger row's xmin: disabling the trigger, DDL, and enabling it again in between two requests changes it, as
 *   does dropping and re-creating it;
 * - the counter table's filenode: TRUNCATE (which fires no event trigger) changes it (rows must never be deleted);
 * - the oid each registered name resolves to (`param`, text[]): a changed search_path (ALTER ROLE … SET fires no
 *   event trigger) that makes a name mean another table changes it. Name lookups only: no catalog is scanned.
 */
export function epochExpr(param: string, watch: DdlWatch): string {
  return `(SELECT 'ddl ' || e.s || '/' || e.c || '/' || t.xmin || '/' || pg_relation_filenode('sync_ddl_epoch')
     || '/' || (SELECT string_agg(coalesce(to_regclass(q)::oid::text, '-'), ',') FROM unnest(${param}::text[]) q)
   FROM pg_event_trigger t, (SELECT coalesce(sum(n), 0) AS s, count(*) AS c FROM sync_ddl_epoch) e
  WHERE t.evtname = '${watch.trigger}' AND t.evtfoid = ${watch.fn} AND t.evtenabled = 'A')`
}
