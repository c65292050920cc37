import type pg from 'pg'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { quoteIdent } from '../util/sql.js'

export interface RlsOptions {
  /** Precede each CREATE POLICY with DROP POLICY IF EXISTS so the script can be re-run (default false). */
  idempotent?: boolean
}

const UID = `current_setting('app.user_id', true)`

/** The type of a table's column as format_type prints it (`uuid`, `bigint`, …), or undefined when unknown. */
export type ColumnTypeOf = (t: ResolvedTable, column: string) => string | undefined

/** Column types from a schema contract (every catalog column of every registered table). */
export function contractColumnTypes(contract: SchemaContract): ColumnTypeOf {
  return (t, column) => contract.allColumns.get(t.tableName)?.get(column)
}

const INTEGER_RANGES: { [type: string]: [string, string] } = {
  smallint: ['-32768', '32767'],
  integer: ['-2147483648', '2147483647'],
  bigint: ['-9223372036854775808', '9223372036854775807'],
}
const CANONICAL_UUID = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
const CANONICAL_INTEGER = '^(0|-?[1-9][0-9]{0,18})$'

/**
 * The caller's id (text) as a value of the owner column's type, computed once per statement, so that `owner = value`
 * is an index condition instead of a per-row `owner::text = …` cast (which no plain index on the owner serves).
 * Only the id strings that are the canonical text of some value match, exactly like the text comparison: a string
 * that is not one (e.g. not a lower-case uuid for a uuid owner) becomes NULL, i.e. "owns no row", never a cast error.
 * Nested CASEs: PostgreSQL evaluates a CASE arm (even when folding constants) only when its condition held.
 * Undefined for types compared as text (text, varchar: no cast at all) or unknown ones (the text comparison stays).
 */
function ownerValue(type: string | undefined): string | undefined {
  if (type === undefined) return undefined
  if (type === 'text' || /^character varying(\(\d+\))?$/.test(type)) return UID
  if (type === 'uuid') return `CASE WHEN ${UID} ~ '${CANONICAL_UUID}' THEN ${UID}::uuid END`
  const range = INTEGER_RANGES[type]
  if (!range) return undefined
  return `CASE WHEN ${UID} ~ '${CANONICAL_INTEGER}' THEN CASE WHEN ${UID}::numeric BETWEEN ${range[0]} AND ${range[1]} THEN ${UID}::${type} END END`
}

function ownerPredicate(alias: string, ownerColumn: string, withNull: boolean, type: string | undefined): string {
  const col = `${alias}${quoteIdent(ownerColumn)}`
  const value = ownerValue(type)
  const own = value === undefined ? `${col}::text = ${UID}` : `${col} = ${value}`
  return withNull ? `(${col} IS NULL OR ${own})` : own
}

/**
 * SQL predicate "this row of `t` is the caller's" against `current_setting('app.user_id', true)` (set by every engine
 * transaction), walking the parent chain with aliases p1, p2, …. `read` adds the NULL-owner branch when the table
 * allows global reads. Returns undefined for tables without owner and parent (everyone may read; nobody may write).
 * `ref` is how the row's table is referenced in the surrounding query (default: its quoted name). With `typeOf`
 * (the owner columns' types), owners are compared in their own type (see `ownerValue`): what lets an (owner, id)
 * index serve a per-user read of a table of many users.
 */
export function accessPredicate(
  registry: Registry,
  t: ResolvedTable,
  mode: 'read' | 'write',
  ref: string = t.sqlName,
  typeOf?: ColumnTypeOf,
): string | undefined {
  return predicateFor(registry, t, mode === 'read' && t.allowGlobalRead, ref, typeOf)
}

function predicateFor(
  registry: Registry,
  t: ResolvedTable,
  withNull: boolean,
  ref: string = t.sqlName,
  typeOf?: ColumnTypeOf,
): string | undefined {
  const ownerType = (table: ResolvedTable, column: string) => typeOf?.(table, column)
  if (t.ownerColumn) {
    const alias = ref === t.sqlName ? '' : `${ref}.`
    return ownerPredicate(alias, t.ownerColumn, withNull, ownerType(t, t.ownerColumn))
  }
  if (!t.parentTable || !t.parentFkColumn) return undefined
  const build = (child: ResolvedTable, childRef: string, depth: number): string => {
    const parent = registry.get(child.parentTable as string) as ResolvedTable
    const alias = `p${depth}`
    const join = `${alias}.${quoteIdent(parent.idColumn)} = ${childRef}.${quoteIdent(child.parentFkColumn as string)}`
    const inner = parent.ownerColumn
      ? ownerPredicate(`${alias}.`, parent.ownerColumn, withNull, ownerType(parent, parent.ownerColumn))
      : build(parent, alias, depth + 1)
    return `EXISTS (SELECT 1 FROM ${parent.sqlName} ${alias} WHERE ${join} AND ${inner})`
  }
  return build(t, ref, 1)
}

/** The RLS statements of PROTOCOL.md §2.6 for every registered table, in registration order. */
export function rlsStatements(registry: Registry, opts: RlsOptions = {}): string[] {
  const out: string[] = []
  for (const t of registry.tables()) {
    const base = t.tableName.replaceAll('.', '_')
    const policy = (name: string, body: string) => {
      const ident = quoteIdent(`${name}_${base}`)
      if (opts.idempotent) out.push(`DROP POLICY IF EXISTS ${ident} ON ${t.sqlName}`)
      out.push(`CREATE POLICY ${ident} ON ${t.sqlName} ${body}`)
    }
    out.push(`ALTER TABLE ${t.sqlName} ENABLE ROW LEVEL SECURITY`)
    out.push(`ALTER TABLE ${t.sqlName} FORCE ROW LEVEL SECURITY`)
    const read = predicateFor(registry, t, t.allowGlobalRead)
    if (read === undefined) {
      policy('sync_read', 'FOR SELECT USING (true)')
      continue
    }
    policy('sync_read', `FOR SELECT USING (${read})`)
    if (t.pushPolicy !== 'owner_only') continue
    const write = predicateFor(registry, t, false) as string
    policy('sync_write_ins', `FOR INSERT WITH CHECK (${write})`)
    policy('sync_write_upd', `FOR UPDATE USING (${write})`)
    policy('sync_write_del', `FOR DELETE USING (${write})`)
  }
  return out
}

/** Applies the policies in one transaction; safe to re-run. Needs a role that owns the tables. */
export async function applyRlsPolicies(pool: pg.Pool, registry: Registry, opts: RlsOptions = {}): Promise<void> {
  const db = await pool.connect()
  try {
    await db.query('BEGIN')
    for (const sql of rlsStatements(registry, { ...opts, idempotent: true })) await db.query(sql)
    await db.query('COMMIT')
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    db.release()
  }
}
