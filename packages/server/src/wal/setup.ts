import type pg from 'pg'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { quoteIdent } from '../util/sql.js'
import { WalConfigurationError } from './errors.js'

/** PostgreSQL's rule for replication slot names. */
const SLOT_NAME_RE = /^[a-z0-9_]{1,63}$/

export function assertSlotName(name: string): void {
  if (!SLOT_NAME_RE.test(name)) {
    throw new WalConfigurationError(
      `invalid slot name ${JSON.stringify(name)}: use 1-63 lower-case letters, digits or underscores`,
    )
  }
}

type Queryable = pg.Pool | pg.ClientBase

/**
 * What keeps this server (and, with `role`, the connected role) from logical replication, each with its fix:
 * wal_level, slots, WAL senders, the REPLICATION attribute. Empty when everything is in place.
 */
export async function replicationProblems(db: Queryable, opts: { role: boolean }): Promise<string[]> {
  const { rows } = await db.query<{ wal_level: string; slots: string; senders: string; can: boolean; me: string }>(
    `SELECT current_setting('wal_level') AS wal_level, current_setting('max_replication_slots') AS slots, current_user AS me,
            current_setting('max_wal_senders') AS senders,
            (SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user) AS can`,
  )
  const r = rows[0]
  if (!r) return []
  const out: string[] = []
  if (r.wal_level !== 'logical') {
    out.push(
      `wal_level is ${r.wal_level}, but capturing changes needs wal_level=logical. Fix: run ` +
        '`ALTER SYSTEM SET wal_level = logical;` and restart PostgreSQL (managed services: enable logical ' +
        'replication in the parameter group, e.g. rds.logical_replication = 1)',
    )
  }
  if (Number(r.slots) === 0) {
    out.push('max_replication_slots is 0. Fix: `ALTER SYSTEM SET max_replication_slots = 10;` and restart PostgreSQL')
  }
  if (Number(r.senders) === 0) {
    out.push('max_wal_senders is 0. Fix: `ALTER SYSTEM SET max_wal_senders = 10;` and restart PostgreSQL')
  }
  if (opts.role && r.can === false) {
    out.push(
      `role ${r.me} may not replicate. Fix: \`ALTER ROLE ${quoteIdent(r.me)} REPLICATION;\` (managed services: grant the ` +
        "provider's replication role, e.g. rds_replication)",
    )
  }
  return out
}

/** Fails with the fix when the server or role cannot do logical decoding. */
export async function assertLogicalWal(db: Queryable): Promise<void> {
  const problems = await replicationProblems(db, { role: true })
  if (problems.length > 0) throw new WalConfigurationError(problems.join('; '))
}

/** Adds the fix to the errors a missing privilege or exhausted slots raise while setting up. */
function withFix(err: unknown, what: string, fix: string): unknown {
  const code = (err as { code?: string }).code
  if (code === '42501' || code === '53400' || code === '55000') {
    return new WalConfigurationError(`${what}: ${(err as Error).message}. Fix: ${fix}`, { cause: err })
  }
  return err
}

/**
 * OIDs of the registered tables. A table that does not exist is a configuration error, and so is a partitioned one:
 * PostgreSQL publishes a partitioned table's changes as changes of its partitions (or, with
 * `publish_via_partition_root`, leaves out a TRUNCATE of one partition, and a partition attached later has its own
 * replica identity), so capture would miss them without a word. Refused until capture maps partitions.
 */
export async function tableOids(db: Queryable, registry: Registry): Promise<Map<number, ResolvedTable>> {
  const tables = registry.tables()
  const { rows } = await db.query<{ i: string; oid: number | null; kind: string | null }>(
    `SELECT x.i::text AS i, c.oid::int8 AS oid, c.relkind::text AS kind
       FROM unnest($1::text[]) WITH ORDINALITY AS x(name, i)
       LEFT JOIN pg_class c ON c.oid = to_regclass(x.name)`,
    [tables.map((t) => t.sqlName)],
  )
  const out = new Map<number, ResolvedTable>()
  const missing: string[] = []
  const partitioned: string[] = []
  for (const r of rows) {
    const t = tables[Number(r.i) - 1] as ResolvedTable
    if (r.oid === null) missing.push(t.tableName)
    else out.set(Number(r.oid), t)
    if (r.kind === 'p') partitioned.push(t.tableName)
  }
  if (missing.length > 0) throw new WalConfigurationError(`registered tables not found: ${missing.join(', ')}`)
  if (partitioned.length > 0) {
    throw new WalConfigurationError(
      `registered tables are partitioned: ${partitioned.join(', ')}. Change capture does not support partitioned ` +
        'tables (PostgreSQL publishes their changes under each partition): their changes would never reach clients. ' +
        'Fix: register a plain table',
    )
  }
  return out
}

/**
 * Creates the publication for the registered tables, or adds the registered tables it lacks. Tables already in it
 * that are not registered stay (another deployment may use them); the consumer ignores their changes.
 */
export async function ensurePublication(db: Queryable, registry: Registry, publicationName: string): Promise<void> {
  const names = registry.tables().map((t) => t.sqlName)
  const pub = await db.query<{ all: boolean }>('SELECT puballtables AS all FROM pg_publication WHERE pubname = $1', [
    publicationName,
  ])
  if (pub.rows.length === 0) {
    try {
      await db.query(`CREATE PUBLICATION ${quoteIdent(publicationName)} FOR TABLE ${names.join(', ')}`)
      return
    } catch (err) {
      // Another process created it first: fall through and make sure it holds our tables.
      if ((err as { code?: string }).code !== '42710') {
        throw withFix(
          err,
          `creating publication ${publicationName}`,
          `create it as the tables' owner: CREATE PUBLICATION ${quoteIdent(publicationName)} FOR TABLE ${names.join(', ')}`,
        )
      }
    }
  } else if (pub.rows[0]?.all) return
  const { rows } = await db.query<{ name: string }>(
    `SELECT x.name FROM unnest($1::text[]) AS x(name)
      WHERE to_regclass(x.name) NOT IN (
        SELECT r.prrelid FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE p.pubname = $2)`,
    [names, publicationName],
  )
  if (rows.length > 0) {
    const sql = `ALTER PUBLICATION ${quoteIdent(publicationName)} ADD TABLE ${rows.map((r) => r.name).join(', ')}`
    try {
      await db.query(sql)
    } catch (err) {
      throw withFix(err, `adding tables to publication ${publicationName}`, `run as its owner: ${sql}`)
    }
  }
}

/**
 * Sets REPLICA IDENTITY FULL on registered tables that lack it, so updates and deletes carry the whole old row:
 * deletes can be bucketed from it, and TOASTed columns an update did not touch can be taken from it.
 */
export async function ensureReplicaIdentityFull(db: Queryable, registry: Registry): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT x.name FROM unnest($1::text[]) AS x(name)
       JOIN pg_class c ON c.oid = to_regclass(x.name)
      WHERE c.relreplident <> 'f'`,
    [registry.tables().map((t) => t.sqlName)],
  )
  for (const r of rows) await db.query(`ALTER TABLE ${r.name} REPLICA IDENTITY FULL`)
  return rows.map((r) => r.name)
}

export interface SlotInfo {
  /** True when this call created the slot. */
  created: boolean
  /** The slot's confirmed_flush_lsn as a 64-bit integer (0 when unknown). */
  confirmedFlushLsn: bigint
}

/** Creates the permanent pgoutput slot when missing; checks an existing one is a pgoutput slot of this database. */
export async function ensureSlot(db: Queryable, slotName: string): Promise<SlotInfo> {
  assertSlotName(slotName)
  const existing = await readSlot(db, slotName)
  if (existing) return { created: false, confirmedFlushLsn: existing }
  try {
    await db.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [slotName])
  } catch (err) {
    if ((err as { code?: string }).code !== '42710') {
      throw withFix(
        err,
        `creating replication slot ${slotName}`,
        'raise max_replication_slots (and restart PostgreSQL) or drop unused slots (pg_replication_slots); ' +
          'the role needs the REPLICATION attribute',
      )
    }
  }
  return { created: true, confirmedFlushLsn: (await readSlot(db, slotName)) ?? 0n }
}

/** Whether the slot exists (it is checked to be a pgoutput slot of this database). */
export async function slotExists(db: Queryable, slotName: string): Promise<boolean> {
  return (await readSlot(db, slotName)) !== null
}

async function readSlot(db: Queryable, slotName: string): Promise<bigint | null> {
  const { rows } = await db.query<{ plugin: string; same_db: boolean; lsn: string | null }>(
    `SELECT plugin, database = current_database() AS same_db,
            (confirmed_flush_lsn - '0/0'::pg_lsn)::text AS lsn
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slotName],
  )
  const r = rows[0]
  if (!r) return null
  if (r.plugin !== 'pgoutput' || !r.same_db) {
    throw new WalConfigurationError(
      `replication slot ${JSON.stringify(slotName)} exists but is not a pgoutput slot of this database`,
    )
  }
  return r.lsn ? BigInt(r.lsn.split('.')[0] as string) : 0n
}
