import { dataJsonSql, ROW_ALIAS } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { quoteIdent } from '../util/sql.js'
import { sqlRfc3339 } from '../util/time.js'

/**
 * Column types whose JSON is their text output, verbatim (numbers without NaN or infinities, booleans, JSON) or in
 * quotes (uuid: hex digits and hyphens only): exactly what `to_json` writes for them, with no per-row type lookup.
 */
const AS_TEXT = new Set(['smallint', 'integer', 'bigint', 'boolean', 'json', 'jsonb'])
const QUOTED_TEXT = new Set(['uuid'])

/**
 * The select list of a snapshot page: `id` (PK as text), `data` (the row's JSON text) and `updated_at` (µs RFC 3339).
 *
 * `data` is, byte for byte, what `to_json(row)` renders (`render.pg.test.ts` compares them over every type): the
 * object is assembled by concatenation, in the contract's column order (the table's, when it has no `syncColumns`:
 * every column, by attnum) — keys as constants, the columns of `AS_TEXT`/`QUOTED_TEXT` types as their text, every
 * other column through `to_json(column)`. `to_json(row)` looks up every column's type for every row; this costs
 * about a quarter less PostgreSQL time per row on a typical table. Tables with `syncColumns` keep `dataJsonSql`.
 */
export function pageColumnsSql(t: ResolvedTable, contract: SchemaContract): string {
  return [
    `${ROW_ALIAS}.${t.q.id}::text AS id`,
    `${pageDataSql(t, contract)} AS data`,
    `${sqlRfc3339(`${ROW_ALIAS}.${t.q.updatedAt}`)} AS updated_at`,
  ].join(',\n       ')
}

function pageDataSql(t: ResolvedTable, contract: SchemaContract): string {
  const columns = contract.columns.get(t.tableName) ?? []
  // A column name JSON must escape would need backslashes in a literal: left to `to_json` (rare).
  if (t.syncColumns || columns.length === 0 || columns.some((c) => JSON.stringify(c.name) !== `"${c.name}"`)) {
    return dataJsonSql(t, contract, ROW_ALIAS)
  }
  const parts: string[] = []
  let literal = '{'
  for (const [i, c] of columns.entries()) {
    literal += `${i === 0 ? '' : ','}${JSON.stringify(c.name)}:`
    const col = `${ROW_ALIAS}.${quoteIdent(c.name)}`
    const value = AS_TEXT.has(c.db_type)
      ? `${col}::text`
      : QUOTED_TEXT.has(c.db_type)
        ? `'"' || ${col}::text || '"'`
        : `to_json(${col})::text`
    parts.push(sqlString(literal), `coalesce(${value}, 'null')`)
    literal = ''
  }
  parts.push(sqlString('}'))
  return `(${parts.join(' || ')})`
}

/** `s` (no backslash) as an SQL string literal. */
function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`
}
