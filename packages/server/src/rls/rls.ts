import type pg from 'pg'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { quoteIdent } from '../util/sql.js'

export interface RlsOptions {
  /** Precede each CREATE POLICY with DROP POLICY IF EXISTS so the script can be re-run (default false). */
  idempotent?: boolean
}

const UID = `current_setting('app.user_id', true)`

function ownerPredicate(alias: string, ownerColumn: string, withNull: boolean): string {
  const col = `${alias}${quoteIdent(ownerColumn)}`
  const own = `${col}::text = ${UID}`
  return withNull ? `(${col} IS NULL OR ${own})` : own
}

/**
 * SQL predicate "this row of `t` is the caller's" against `current_setting('app.user_id', true)` (set by every engine
 * transaction), walking the parent chain with aliases p1, p2, …. `read` adds the NULL-owner branch when the table
 * allows global reads. Returns undefined for tables without owner and parent (everyone may read; nobody may write).
 * `ref` is how the row's table is referenced in the surrounding query (default: its quoted name).
 */
export function accessPredicate(
  registry: Registry,
  t: ResolvedTable,
  mode: 'read' | 'write',
  ref: string = t.sqlName,
): string | undefined {
  return predicateFor(registry, t, mode === 'read' && t.allowGlobalRead, ref)
}

function predicateFor(
  registry: Registry,
  t: ResolvedTable,
  withNull: boolean,
  ref: string = t.sqlName,
): string | undefined {
  if (t.ownerColumn) return ownerPredicate(ref === t.sqlName ? '' : `${ref}.`, t.ownerColumn, withNull)
  if (!t.parentTable || !t.parentFkColumn) return undefined
  const build = (child: ResolvedTable, childRef: string, depth: number): string => {
    const parent = registry.get(child.parentTable as string) as ResolvedTable
    const alias = `p${depth}`
    const join = `${alias}.${quoteIdent(parent.idColumn)} = ${childRef}.${quoteIdent(child.parentFkColumn as string)}`
    const inner = parent.ownerColumn
      ? ownerPredicate(`${alias}.`, parent.ownerColumn, withNull)
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
