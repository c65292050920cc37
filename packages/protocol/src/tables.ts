import type { PushPolicy } from './schema.js'

export interface TableMeta {
  table_name: string
  push_policy: PushPolicy
  dependencies: string[]
  parent_table?: string
  parent_fk_col?: string
  updated_at_column?: string
  deleted_at_column?: string
  bucket_by_column?: string
  bucket_prefix?: string
  global_when_bucket_null?: true
  allow_global_read?: true
  bucket_function?: string
}

export interface TablesResponse {
  tables: TableMeta[]
  server_time: string
  schema_version: number
  schema_hash: string
}
