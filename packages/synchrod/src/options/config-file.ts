/** What the JSON config file may hold besides the option fields' values. */
import type { OptionSpec } from './spec.js'
import { OPTIONS } from './table/index.js'

/** Settings that options in the config file may carry, by top-level key (other than `tables`). */
export const CONFIG_KEYS = new Set(
  (OPTIONS as readonly OptionSpec[]).flatMap((o) => (o.config ? [o.config.split('.')[0] as string] : [])),
)

/** Keys of the config file's nested objects, e.g. `compaction` → intervalMs, staleThresholdMs, batchSize. */
export const NESTED_CONFIG_KEYS: ReadonlyMap<string, readonly string[]> = (() => {
  const out = new Map<string, string[]>()
  for (const o of OPTIONS as readonly OptionSpec[]) {
    const [group, key] = o.config?.split('.') ?? []
    if (group && key) out.set(group, [...(out.get(group) ?? []), key])
  }
  return out
})()

/** TableConfig fields accepted in the config file: name, JSON type, meaning. */
export const TABLE_FIELDS: ReadonlyArray<readonly [string, 'string' | 'string[]' | 'boolean', string]> = [
  ['tableName', 'string', 'Table name, optionally schema-qualified (`app.orders`). Required.'],
  ['pushPolicy', 'string', '`owner_only` (default) or `disabled` (read-only).'],
  ['ownerColumn', 'string', "Column holding the owning user's id; rows are private to that user."],
  ['parentTable', 'string', 'Registered parent table whose owner owns this table’s rows.'],
  ['parentFkColumn', 'string', 'FK column pointing at the parent’s id.'],
  ['syncColumns', 'string[]', 'Only these columns leave the server (id and timestamps are always added).'],
  ['dependencies', 'string[]', 'Tables a client applies before this one.'],
  ['idColumn', 'string', 'Primary key column (default `id`).'],
  ['updatedAtColumn', 'string', 'Default `updated_at`.'],
  ['deletedAtColumn', 'string', 'Default `deleted_at`.'],
  ['protectedColumns', 'string[]', 'Extra columns clients may never write.'],
  ['bucketByColumn', 'string', 'Column whose value names the row’s bucket.'],
  ['bucketPrefix', 'string', 'Prefix of bucket names built from `bucketByColumn`.'],
  ['globalWhenBucketNull', 'boolean', 'A NULL bucket column puts the row in `global` (needs `allowGlobalRead`).'],
  ['allowGlobalRead', 'boolean', 'Rows with a NULL owner are readable by everyone.'],
  ['bucketFunction', 'string', 'SQL function `fn(table, op, new_row jsonb, old_row jsonb) returns setof text`.'],
]

/** The value at a dotted path (`compaction.intervalMs`) of a config object. */
export function getPath(obj: Record<string, unknown>, path: string): unknown {
  let cur: unknown = obj
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}
