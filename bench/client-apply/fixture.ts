// The pulled rows both client-apply benchmarks apply (Node and browser): Northwind `orders` with every common
// column type. Platform-free (runs in the browser page too).
import type { SchemaResponse, SchemaTable, SyncRecord } from '@synchro/protocol'

const c = (
  name: string,
  logical: SchemaTable['columns'][number]['logical_type'],
  db: string,
  nullable: boolean,
  def?: string,
): SchemaTable['columns'][number] => ({
  name,
  db_type: db,
  logical_type: logical,
  nullable,
  ...(def ? { default_sql: def, sqlite_default_sql: def } : {}),
  default_kind: def ? 'portable' : 'none',
  is_primary_key: name === 'id',
})

// Northwind `orders` (PROTOCOL.md §5.1): every common column type of a real table.
export const ORDERS: SchemaTable = {
  table_name: 'orders',
  push_policy: 'owner_only',
  updated_at_column: 'updated_at',
  deleted_at_column: 'deleted_at',
  primary_key: ['id'],
  bucket_by_column: 'user_id',
  bucket_prefix: 'user:',
  columns: [
    c('id', 'string', 'uuid', false),
    c('user_id', 'string', 'uuid', false),
    c('status', 'string', 'order_status', false, "'pending'"),
    c('order_date', 'datetime', 'timestamp with time zone', false, 'CURRENT_TIMESTAMP'),
    c('required_date', 'date', 'date', true),
    c('preferred_ship_time', 'time', 'time without time zone', true),
    c('ship_address', 'string', 'text', false, "''"),
    c('metadata', 'json', 'jsonb', false, "'{}'"),
    c('total_cents', 'int64', 'bigint', false, '0'),
    c('created_at', 'datetime', 'timestamp with time zone', false, 'CURRENT_TIMESTAMP'),
    c('updated_at', 'datetime', 'timestamp with time zone', false, 'CURRENT_TIMESTAMP'),
    c('deleted_at', 'datetime', 'timestamp with time zone', true),
  ],
}
export const SCHEMA: SchemaResponse = { schema_version: 1, schema_hash: 'bench', server_time: '', tables: [ORDERS] }

export function makeRecords(n: number): SyncRecord[] {
  const user = crypto.randomUUID()
  const out: SyncRecord[] = new Array(n)
  for (let i = 0; i < n; i++) {
    const us = String(i % 1_000_000).padStart(6, '0')
    const ts = `2026-11-26T00:40:02.${us}+00:00`
    out[i] = {
      id: crypto.randomUUID(),
      table_name: 'orders',
      updated_at: ts.replace('+00:00', 'Z'),
      data: {
        id: '',
        user_id: user,
        status: i % 3 === 0 ? 'shipped' : 'pending',
        order_date: ts,
        required_date: i % 2 === 0 ? '2026-12-01' : null,
        preferred_ship_time: i % 2 === 0 ? '10:30:00' : null,
        ship_address: `${i} Long Street, Springfield`,
        metadata: { source: 'bench', n: i, tags: ['a', 'b'] },
        total_cents: i * 100,
        created_at: ts,
        updated_at: ts,
        deleted_at: null,
      },
    }
    out[i]!.data.id = out[i]!.id
  }
  return out
}
