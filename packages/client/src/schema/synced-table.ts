/**
 * The client's view of one synced table, derived once from `GET /sync/schema` so the hot paths (apply, push) do no
 * per-row schema lookups.
 */
import {
  isWideNumeric,
  type LogicalType,
  type SchemaColumn,
  type SchemaResponse,
  type SchemaTable,
} from '@synchro/protocol'
import { quoteIdent } from '../store/sql.js'

export interface SyncedTable {
  name: string
  /** The single primary-key column (the protocol requires exactly one). */
  pk: string
  updatedAt: string
  deletedAt: string
  /** False for push-disabled (read-only) tables: local writes are still queued, the server rejects them terminally. */
  pushable: boolean
  columns: SchemaColumn[]
  columnNames: Set<string>
  types: Map<string, LogicalType>
  source: SchemaTable
}

export function toSyncedTable(t: SchemaTable): SyncedTable {
  const pk = t.primary_key[0] ?? t.columns.find((c) => c.is_primary_key)?.name ?? 'id'
  return {
    name: t.table_name,
    pk,
    updatedAt: t.updated_at_column || 'updated_at',
    deletedAt: t.deleted_at_column || 'deleted_at',
    pushable: t.push_policy !== 'disabled',
    columns: t.columns,
    columnNames: new Set(t.columns.map((c) => c.name)),
    types: new Map(t.columns.map((c) => [c.name, c.logical_type])),
    source: t,
  }
}

/** True when the primary key is a PostgreSQL `uuid` (which the server stores and sends in lower case). */
export function pkIsUuid(t: SyncedTable): boolean {
  const pk = t.columns.find((c) => c.name === t.pk)
  return pk?.db_type.trim().toLowerCase() === 'uuid'
}

/** The loaded server schema. */
export interface ClientSchema {
  version: number
  hash: string
  tables: Map<string, SyncedTable>
}

export function toClientSchema(res: SchemaResponse): ClientSchema {
  return {
    version: res.schema_version,
    hash: res.schema_hash,
    tables: new Map(res.tables.map((t) => [t.table_name, toSyncedTable(t)])),
  }
}

/** SQLite storage class for a logical type (§2.3). */
export function sqliteType(t: LogicalType): 'TEXT' | 'INTEGER' | 'REAL' | 'BLOB' {
  switch (t) {
    case 'int':
    case 'int64':
    case 'boolean':
      return 'INTEGER'
    case 'float':
      return 'REAL'
    case 'bytes':
      return 'BLOB'
    default:
      return 'TEXT'
  }
}

/**
 * The declared type of a local column: §2.3's storage class, except for a `numeric` wider than a double. REAL
 * affinity would round its values, so that column gets no declared type (no affinity): SQLite keeps a value that a
 * double holds exactly as REAL and any other as TEXT carrying the exact decimal.
 */
export function sqliteColumnType(c: SchemaColumn): string {
  if (c.logical_type === 'float' && isWideNumeric(c.db_type)) return ''
  return sqliteType(c.logical_type)
}

/** Defaults SQLite refuses in `ALTER TABLE … ADD COLUMN` ("Cannot add a column with non-constant default"). */
function isConstantDefault(sql: string): boolean {
  return !/^(CURRENT_TIMESTAMP|CURRENT_DATE|CURRENT_TIME)$/i.test(sql.trim())
}

/** `CREATE TABLE` for a synced table: types per §2.3, PK, NOT NULL, DEFAULT sqlite_default_sql (§4.1). */
export function createTableSql(t: SyncedTable): string {
  const cols = t.columns.map((c) => {
    let def = `${quoteIdent(c.name)} ${sqliteColumnType(c)}`.trimEnd()
    if (c.name === t.pk) def += ' PRIMARY KEY NOT NULL'
    else if (!c.nullable) def += ' NOT NULL'
    if (c.sqlite_default_sql) def += ` DEFAULT ${wrapDefault(c.sqlite_default_sql)}`
    return def
  })
  return `CREATE TABLE IF NOT EXISTS ${quoteIdent(t.name)} (\n  ${cols.join(',\n  ')}\n)`
}

/** `ALTER TABLE … ADD COLUMN` for a column the server added. NOT NULL only when a constant default fills old rows. */
export function addColumnSql(table: string, c: SchemaColumn): string {
  let def = `ALTER TABLE ${quoteIdent(table)} ADD COLUMN ${quoteIdent(c.name)} ${sqliteColumnType(c)}`.trimEnd()
  const d = c.sqlite_default_sql
  if (d && isConstantDefault(d)) {
    if (!c.nullable) def += ' NOT NULL'
    def += ` DEFAULT ${wrapDefault(d)}`
  }
  return def
}

// Signed numbers must be parenthesised in a column DEFAULT clause.
function wrapDefault(sql: string): string {
  return /^-/.test(sql) ? `(${sql})` : sql
}
