export type LogicalType =
  | 'string'
  | 'int'
  | 'int64'
  | 'float'
  | 'boolean'
  | 'json'
  | 'bytes'
  | 'date'
  | 'time'
  | 'datetime'

export type DefaultKind = 'none' | 'portable' | 'server_only'
export type PushPolicy = 'owner_only' | 'disabled'

/** Key order is part of the contract: the schema hash is computed over this exact JSON. */
export interface SchemaColumn {
  name: string
  db_type: string
  logical_type: LogicalType
  nullable: boolean
  default_sql?: string
  default_kind: DefaultKind
  sqlite_default_sql?: string
  is_primary_key: boolean
}

export interface SchemaTable {
  table_name: string
  push_policy: PushPolicy
  parent_table?: string
  parent_fk_col?: string
  dependencies?: string[]
  updated_at_column: string
  deleted_at_column: string
  primary_key: string[]
  bucket_by_column?: string
  bucket_prefix?: string
  global_when_bucket_null?: true
  allow_global_read?: true
  bucket_function?: string
  columns: SchemaColumn[]
}

export interface SchemaResponse {
  schema_version: number
  schema_hash: string
  server_time: string
  tables: SchemaTable[]
}

/** `numeric`/`decimal` without a precision, or with more digits than a double holds exactly (15). */
const WIDE_NUMERIC = /^(?:numeric|decimal)(?:\s*\(\s*(\d+)\s*(?:,\s*-?\d+\s*)?\))?$/i

/**
 * Whether a `float` column's values may need more than a double: the client then stores them without SQLite type
 * affinity (REAL when exact, otherwise the exact decimal as TEXT).
 */
export function isWideNumeric(dbType: string): boolean {
  const m = WIDE_NUMERIC.exec(dbType.trim())
  return m !== null && (m[1] === undefined || Number(m[1]) > 15)
}
