import { bucketRule, MAX_BUCKET_ID_BYTES } from '../buckets/resolver.js'
import type { RowChange } from '../changelog/changes.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { RelationMessage } from './pgoutput.js'

/**
 * Which columns of a table's row changes capture decodes. A change's values are only read by the bucket rule, the
 * soft-delete check, re-bucketing of children, and — when the rule fails — the rule failure's payload (the whole
 * row). Column and global rules read the id, the bucket column, `deleted_at` and what children inherit through, and
 * fail only on their bucket column (missing from the row, or a bucket id too long): so only those columns are
 * decoded (no string for the other values, which were most of the consumer's allocations), and a change that could
 * fail, or that lacks a value it needs, is decoded again whole ({@link needsWholeRow}), exactly as before.
 * Bucket functions get the whole row and parent-chain failures are only known after a query: those tables decode
 * every column.
 */
export interface Projection {
  /** 1 for each relation column to decode. */
  keep: Uint8Array
  /** The column whose value decides the rule's failure, and its bucket prefix (column rule only). */
  bucketColumn: string | null
  prefix: string
}

/** The projection for a table as the relation message describes it, or null to decode every column. */
export function projection(
  registry: Registry,
  table: ResolvedTable,
  rel: RelationMessage,
  globalFunction: string | undefined,
): Projection | null {
  const rule = bucketRule(registry, table, globalFunction)
  if (rule.kind !== 'column' && rule.kind !== 'global') return null
  const wanted = new Set([table.idColumn, table.deletedAtColumn])
  for (const c of [table.bucketByColumn, table.ownerColumn, table.parentFkColumn]) if (c) wanted.add(c)
  if (rule.kind === 'column') wanted.add(rule.column)
  const keep = new Uint8Array(rel.columns.length)
  let kept = 0
  for (const [i, c] of rel.columns.entries()) {
    if (!wanted.has(c.name)) continue
    keep[i] = 1
    kept++
  }
  // A bucket column the relation does not have is a rule failure of every change: their payloads need every column.
  if (rule.kind === 'column' && !rel.columns.some((c) => c.name === rule.column)) return null
  if (kept === rel.columns.length) return null
  return rule.kind === 'column'
    ? { keep, bucketColumn: rule.column, prefix: rule.prefix }
    : { keep, bucketColumn: null, prefix: '' }
}

/**
 * A change decoded with a projection that must be decoded again with every column: its rule may fail (the failure
 * records the whole row), or a value it needs was an unchanged TOAST value without an old one (re-read later from
 * the table, as every such column of the row was before).
 */
export function needsWholeRow(c: RowChange, p: Projection): boolean {
  if (c.missing !== undefined && c.missing.length > 0) return true
  if (p.bucketColumn === null) return false
  const v = c.row[p.bucketColumn]
  if (v === undefined) return true
  // The rule's "bucket id too long" test, in UTF-8 bytes; at most 3 bytes per UTF-16 code unit decides most values.
  return v !== null && (p.prefix.length + v.length) * 3 > MAX_BUCKET_ID_BYTES
}
