/** Local-only tables: created, altered and indexed by the app (never synced, never touched by schema migration). */

import { InvalidArgumentError } from '../errors.js'
import { readSyncedTableNames } from '../schema/migrate.js'
import type { ClientDatabase } from '../tabs/shared-database.js'
import { quoteIdent } from './sql.js'

export interface ColumnDef {
  name: string
  /** SQLite type name, e.g. `TEXT`, `INTEGER`, `REAL`, `BLOB`, `NUMERIC`. */
  type: string
  nullable?: boolean
  primaryKey?: boolean
  defaultValue?: string | number | boolean | null
}

export interface CreateTableOptions {
  ifNotExists?: boolean
  withoutRowid?: boolean
}

const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
const TYPE_RE = /^[A-Za-z][A-Za-z0-9_ ]*(\(\s*\d+\s*(,\s*\d+\s*)?\))?$/

/** Creates a local-only table (never synced, never touched by schema migration). */
export async function createLocalTable(
  db: ClientDatabase,
  name: string,
  columns: readonly ColumnDef[],
  options: CreateTableOptions = {},
): Promise<void> {
  await assertLocalTableName(db, name)
  if (columns.length === 0) throw new InvalidArgumentError('createTable needs at least one column')
  const pks = columns.filter((c) => c.primaryKey)
  const defs = columns.map((c) => {
    let d = `${ident(c.name)} ${sqlType(c.type)}`
    if (c.primaryKey && pks.length === 1) d += ' PRIMARY KEY'
    if (c.nullable === false || (c.primaryKey && c.nullable !== true)) d += ' NOT NULL'
    if (c.defaultValue !== undefined) d += ` DEFAULT ${defaultLiteral(c.defaultValue)}`
    return d
  })
  if (pks.length > 1) defs.push(`PRIMARY KEY (${pks.map((c) => ident(c.name)).join(', ')})`)
  const sql = `CREATE TABLE ${options.ifNotExists ? 'IF NOT EXISTS ' : ''}${quoteIdent(name)} (${defs.join(', ')})${
    options.withoutRowid ? ' WITHOUT ROWID' : ''
  }`
  await db.run((ex) => ex.exec(sql))
  db.schemaChanged()
}

/** Adds the columns that `name` does not have yet (local-only tables). */
export async function alterLocalTable(db: ClientDatabase, name: string, columns: readonly ColumnDef[]): Promise<void> {
  await assertLocalTableName(db, name)
  await db.transaction(async (tx) => {
    const have = new Set(
      (await tx.all<{ name: string }>('SELECT name FROM pragma_table_info(?)', [name])).map((r) => r.name),
    )
    for (const c of columns) {
      if (have.has(c.name)) continue
      let d = `ALTER TABLE ${quoteIdent(name)} ADD COLUMN ${ident(c.name)} ${sqlType(c.type)}`
      if (c.defaultValue !== undefined) {
        if (c.nullable === false) d += ' NOT NULL'
        d += ` DEFAULT ${defaultLiteral(c.defaultValue)}`
      }
      await tx.exec(d)
    }
  })
}

/** Creates an index (`idx_<table>_<columns>`) if missing. Works on synced tables too. */
export async function createIndex(
  db: ClientDatabase,
  table: string,
  columns: readonly string[],
  unique = false,
): Promise<void> {
  ident(table)
  if (columns.length === 0) throw new InvalidArgumentError('createIndex needs at least one column')
  const name = `idx_${table}_${columns.map((c) => ident(c) && c).join('_')}`
  await db.run((ex) =>
    ex.exec(
      `CREATE ${unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${quoteIdent(name)} ON ${quoteIdent(table)} (${columns
        .map(quoteIdent)
        .join(', ')})`,
    ),
  )
}

function ident(name: string): string {
  if (!IDENT_RE.test(name)) throw new InvalidArgumentError(`invalid identifier ${JSON.stringify(name)}`)
  return quoteIdent(name)
}

function sqlType(t: string): string {
  if (!TYPE_RE.test(t)) throw new InvalidArgumentError(`invalid column type ${JSON.stringify(t)}`)
  return t
}

async function assertLocalTableName(db: ClientDatabase, name: string): Promise<void> {
  ident(name)
  if (/^(_synchro_|sqlite_)/i.test(name)) throw new InvalidArgumentError(`table name ${name} is reserved`)
  const synced = await db.run((ex) => readSyncedTableNames(ex))
  if (synced.some((s) => s.toLowerCase() === name.toLowerCase())) {
    throw new InvalidArgumentError(`table ${name} is synced; its schema comes from the server`)
  }
}

function defaultLiteral(v: string | number | boolean | null): string {
  if (v === null) return 'NULL'
  if (typeof v === 'boolean') return v ? '1' : '0'
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new InvalidArgumentError('defaultValue must be a finite number')
    return v < 0 ? `(${v})` : String(v)
  }
  return `'${v.replaceAll("'", "''")}'`
}
