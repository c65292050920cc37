import type pg from 'pg'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { quoteIdent } from '../util/sql.js'
import { MIGRATION_LOCK } from './migrations.js'

/** An index a registered table needs so that per-user reads stay index lookups whatever the table's size. */
export interface TableIndex {
  table: string
  name: string
  columns: string[]
  /** `CREATE INDEX [CONCURRENTLY] IF NOT EXISTS …` */
  sql(opts?: { concurrently?: boolean }): string
}

/** PostgreSQL truncates identifiers to 63 bytes: keep the readable part and make the tail unique. */
function indexName(t: ResolvedTable, columns: string[]): string {
  const base = `sync_${t.tableName.replaceAll('.', '_')}_${columns.join('_')}`
  if (Buffer.byteLength(base) <= 63) return base
  let hash = 0
  for (const ch of base) hash = (Math.imul(hash, 31) + (ch.codePointAt(0) ?? 0)) >>> 0
  let head = base
  while (Buffer.byteLength(head) > 54) head = head.slice(0, -1)
  return `${head}_${hash.toString(16).padStart(8, '0')}`
}

/**
 * The indexes the registered tables need: (owner, id) on every table with an owner column — a snapshot page is
 * `owner = $user AND id > $after ORDER BY id LIMIT n`, which that index answers in O(page) whatever the number of
 * other users' rows (the primary key alone makes it walk and filter the whole table). Tables reached through a
 * parent, or without owner, are read through their primary key and need nothing more.
 */
export function tableIndexes(registry: Registry): TableIndex[] {
  const out: TableIndex[] = []
  for (const t of registry.tables()) {
    if (!t.ownerColumn) continue
    const columns = [t.ownerColumn, t.idColumn]
    const name = indexName(t, columns)
    out.push({
      table: t.tableName,
      name,
      columns,
      sql: (opts = {}) =>
        `CREATE INDEX${opts.concurrently ? ' CONCURRENTLY' : ''} IF NOT EXISTS ${quoteIdent(name)} ON ${t.sqlName} (${columns.map(quoteIdent).join(', ')})`,
    })
  }
  return out
}

/** Whether some valid, non-partial btree index of `table` starts with exactly `columns` (plain columns, in order). */
const COVERED_SQL = `
SELECT EXISTS (
  SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
   WHERE i.indrelid = to_regclass($1) AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'
     AND (SELECT array_agg(a.attname::text ORDER BY k.ord)
            FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE k.ord <= cardinality($2::text[])) = $2::text[]
) AS covered, to_regclass($1) IS NOT NULL AS present`

export interface EnsureIndexesResult {
  /** Indexes created by this call. */
  created: string[]
  /** Tables that already had an equivalent index (any name). */
  covered: string[]
  /** Registered tables that do not exist (yet): nothing to index. */
  missingTables: string[]
  /** Indexes that could not be created (e.g. the role does not own the table), with the statement to run instead. */
  failed: { name: string; sql: string; error: string }[]
}

/**
 * Creates the missing `tableIndexes` (an existing index on the same leading columns counts, whatever its name), in one
 * transaction under the migration lock (several instances may start together). An index the role cannot create
 * (not the table's owner) is reported in `failed`, never thrown: the engine works without it, only slower. A plain CREATE INDEX blocks writes to
 * the table while it builds: on a large live table, run the printed `CONCURRENTLY` form yourself first
 * (`synchrod migrate` prints it), after which this finds the index and does nothing.
 */
export async function ensureTableIndexes(pool: pg.Pool, registry: Registry): Promise<EnsureIndexesResult> {
  const result: EnsureIndexesResult = { created: [], covered: [], missingTables: [], failed: [] }
  const wanted = tableIndexes(registry)
  if (wanted.length === 0) return result
  const db = await pool.connect()
  try {
    await db.query('BEGIN')
    await db.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    for (const ix of wanted) {
      const t = registry.get(ix.table) as ResolvedTable
      const { rows } = await db.query<{ covered: boolean; present: boolean }>(COVERED_SQL, [t.sqlName, ix.columns])
      const state = rows[0]
      if (!state?.present) result.missingTables.push(ix.table)
      else if (state.covered) result.covered.push(ix.table)
      else {
        // A role that may create the sync_* tables need not own the application's: that must not stop the engine.
        await db.query('SAVEPOINT synchro_index')
        try {
          await db.query(ix.sql())
          result.created.push(ix.name)
        } catch (err) {
          await db.query('ROLLBACK TO SAVEPOINT synchro_index')
          result.failed.push({ name: ix.name, sql: ix.sql({ concurrently: true }), error: (err as Error).message })
        }
      }
    }
    await db.query('COMMIT')
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    db.release()
  }
  return result
}
