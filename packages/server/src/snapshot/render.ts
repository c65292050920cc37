import { dataTextSql, ROW_ALIAS } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { sqlRfc3339Json } from '../util/time.js'

/**
 * The select list of a snapshot page: `id` (PK as text), `data` (the row's JSON text, `dataTextSql`) and `updated_at`
 * (`sqlRfc3339Json`, as pull pages: about half of `to_char`'s backend CPU; `wirePageUpdatedAt` renders it). Snapshots
 * read live rows only: no `deleted_at` column.
 */
export function pageColumnsSql(t: ResolvedTable, contract: SchemaContract): string {
  return [
    `${ROW_ALIAS}.${t.q.id}::text AS id`,
    `${dataTextSql(t, contract, ROW_ALIAS)} AS data`,
    `${sqlRfc3339Json(`${ROW_ALIAS}.${t.q.updatedAt}`)} AS updated_at`,
  ].join(',\n       ')
}
