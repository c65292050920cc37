import type { EngineContext } from '../core/context.js'
import { BadRequestError } from '../errors.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { safeErrorFacts } from '../util/log.js'
import { quoteIdent } from '../util/sql.js'
import { rfc3339FromJson, sqlRfc3339Json, trimRfc3339 } from '../util/time.js'

/** Alias of the application table in every row-rendering query (`to_json(_s.*)` is unambiguous even with a column `_s`). */
export const ROW_ALIAS = '_s'

/** PostgreSQL caps function arguments at 100: 50 key/value pairs per json_build_object call. */
const PAIRS_PER_CALL = 50

/** Go renders a missing timestamp as the zero time; `updated_at` is always present on the wire. */
const ZERO_TIMESTAMP = '0001-01-01T00:00:00Z'

/**
 * SQL expression rendering one row of `t` (aliased `alias`) as the `data` object of a Record (§1.5, Decision 14):
 * PostgreSQL's own JSON rendering (µs timestamps with offset, numerics, arrays, bytea hex, jsonb nested), restricted
 * to the synced columns of the current contract when the table has `syncColumns`.
 */
export function dataJsonSql(t: ResolvedTable, contract: SchemaContract, alias: string = ROW_ALIAS): string {
  if (!t.syncColumns) return `to_json(${alias}.*)`
  // The contract's column list is the catalog ∩ syncColumns: a configured name that does not exist is skipped
  // instead of failing every query, and /sync/schema describes exactly what `data` carries (Decision 31).
  const names = (contract.columns.get(t.tableName) ?? []).map((c) => c.name)
  if (names.length === 0) return `'{}'::json`
  const calls: string[] = []
  for (let i = 0; i < names.length; i += PAIRS_PER_CALL) {
    const pairs = names
      .slice(i, i + PAIRS_PER_CALL)
      .map((n) => `'${n.replaceAll("'", "''")}', ${alias}.${quoteIdent(n)}`)
      .join(', ')
    calls.push(
      calls.length === 0 && names.length <= PAIRS_PER_CALL
        ? `json_build_object(${pairs})`
        : `jsonb_build_object(${pairs})`,
    )
  }
  return calls.length === 1 ? (calls[0] as string) : `(${calls.join(' || ')})::json`
}

/**
 * Column types whose JSON is their text output, verbatim (numbers without NaN or infinities, booleans, JSON) or in
 * quotes (uuid: hex digits and hyphens only): exactly what `to_json` writes for them, with no per-row type lookup.
 */
const AS_TEXT = new Set(['smallint', 'integer', 'bigint', 'boolean', 'json', 'jsonb'])
const QUOTED_TEXT = new Set(['uuid'])

/**
 * `dataJsonSql` as text, and for a table without `syncColumns` assembled by concatenation: byte for byte what
 * `to_json(row)` renders (`snapshot/render.pg.test.ts` compares them over every type), in the contract's column order
 * (the table's attnum order) — keys as constants, the columns of `AS_TEXT`/`QUOTED_TEXT` types as their text, every
 * other column through `to_json(column)`. `to_json(row)` looks up every column's type for every row; this costs about
 * a quarter less PostgreSQL time per row on a typical table (rendering 100k orders: 370 → 220 ms of backend CPU).
 */
export function dataTextSql(t: ResolvedTable, contract: SchemaContract, alias: string = ROW_ALIAS): string {
  const columns = contract.columns.get(t.tableName) ?? []
  // A column name JSON must escape would need backslashes in a literal: left to `to_json` (rare).
  if (t.syncColumns || columns.length === 0 || columns.some((c) => JSON.stringify(c.name) !== `"${c.name}"`)) {
    return `${dataJsonSql(t, contract, alias)}::text`
  }
  const parts: string[] = []
  let literal = '{'
  for (const [i, c] of columns.entries()) {
    literal += `${i === 0 ? '' : ','}${JSON.stringify(c.name)}:`
    const col = `${alias}.${quoteIdent(c.name)}`
    const value = AS_TEXT.has(c.db_type)
      ? `${col}::text`
      : QUOTED_TEXT.has(c.db_type)
        ? `'"' || ${col}::text || '"'`
        : `to_json(${col})::text`
    parts.push(`'${literal.replaceAll("'", "''")}'`, `coalesce(${value}, 'null')`)
    literal = ''
  }
  parts.push(`'}'`)
  return `(${parts.join(' || ')})`
}

/**
 * The select list of a pull page's rows: `id` (PK as text), `data`, `updated_at`, `deleted_at` (both timestamps as
 * `sqlRfc3339Json` text, never through a JS Date: `wireTimestamp` renders them).
 */
export function recordColumnsSql(
  t: ResolvedTable,
  contract: SchemaContract,
  alias: string = ROW_ALIAS,
  opts: { deletedAt?: boolean } = {},
): string {
  return [
    `${alias}.${t.q.id}::text AS id`,
    `${dataTextSql(t, contract, alias)} AS data`,
    `${sqlRfc3339Json(`${alias}.${t.q.updatedAt}`)} AS updated_at`,
    // Snapshots only read live rows: no need to format a column known to be NULL.
    opts.deletedAt === false
      ? 'NULL::text AS deleted_at'
      : `${sqlRfc3339Json(`${alias}.${t.q.deletedAt}`)} AS deleted_at`,
  ].join(',\n       ')
}

/** A row as `recordColumnsSql` returns it. */
export interface RecordRow {
  id: string
  data: { [column: string]: unknown }
  updated_at: string | null
  deleted_at: string | null
}

/** Wire form of a `recordColumnsSql` row's `updated_at`. */
export function wirePageUpdatedAt(row: { updated_at: string | null }): string {
  return rfc3339FromJson(row.updated_at) ?? ZERO_TIMESTAMP
}

/** Wire form of `updated_at` (`sqlRfc3339` text). */
export function wireUpdatedAt(row: { updated_at: string | null }): string {
  return trimRfc3339(row.updated_at) ?? ZERO_TIMESTAMP
}

/** Integer primary-key types (as format_type prints them). */
export const INTEGER_ID_TYPES: ReadonlySet<string> = new Set(['smallint', 'integer', 'bigint'])
/** Text primary-key types whose `::text` is their own text (not `char(n)`, whose `::text` drops its padding). */
export const TEXT_ID_TYPES = /^(text|character varying(\(\d+\))?)$/

/** The PostgreSQL type of `t`'s primary key (as format_type prints it), from the current contract. */
export function idTypeOf(t: ResolvedTable, contract: SchemaContract): string | undefined {
  return contract.columns.get(t.tableName)?.find((c) => c.name === t.idColumn)?.db_type
}

/**
 * PostgreSQL text cannot hold NUL: a request string carrying one would fail inside the driver (HTTP 500). Such a
 * string can never name a client, table, bucket or row, so the request is malformed: 400.
 */
export function rejectNul(values: readonly (string | undefined)[]): void {
  for (const v of values) {
    if (v?.includes('\u0000')) throw new BadRequestError('invalid request body')
  }
}

/** Unique values, first occurrence wins (keeps the caller's order). */
export function unique(values: readonly string[]): string[] {
  return [...new Set(values)]
}

/** Error facts safe to log (name, code, message): never SQL parameters or row data. */
export function errorFacts(err: unknown): { [key: string]: unknown } {
  return safeErrorFacts(err, false)
}

/** A stored row left out of a page because its `data` nests deeper than `maxJsonDepth` (Decision 35). */
export interface Unrenderable {
  table: string
  id: string
  /** Changelog operation code (1 create, 2 update). */
  operation: number
}

const UNRENDERABLE_TEXT = 'row data nested deeper than maxJsonDepth: left out of pull and snapshot pages'

/**
 * One `sync_rule_failures` row per left-out record (not repeated on every page that meets it) and a log line without
 * row data. Diagnostics, after the page's own commit: its failure is logged and never fails the page.
 */
export async function recordUnrenderable(ctx: EngineContext, rows: readonly Unrenderable[]): Promise<void> {
  if (rows.length === 0) return
  ctx.logger.warn(
    { count: rows.length, tables: unique(rows.map((r) => r.table)), maxJsonDepth: ctx.limits.maxJsonDepth },
    'rows nested too deeply to render were left out of a page (see sync_rule_failures)',
  )
  await ctx.pool
    .query(
      `INSERT INTO sync_rule_failures (table_name, record_id, operation, error_text)
     SELECT x.t, x.id, x.op, $4
       FROM unnest($1::text[], $2::text[], $3::smallint[]) AS x(t, id, op)
      WHERE NOT EXISTS (SELECT 1 FROM sync_rule_failures f
                         WHERE f.table_name = x.t AND f.record_id = x.id AND f.error_text = $4)`,
      [rows.map((r) => r.table), rows.map((r) => r.id), rows.map((r) => r.operation), UNRENDERABLE_TEXT],
    )
    .catch((err: unknown) => ctx.logger.warn({ err: errorFacts(err) }, 'could not record unrenderable rows'))
}
