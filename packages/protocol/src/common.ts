import * as v from 'valibot'

/** RFC 3339 timestamp: `Z` or numeric offset, optional fraction (PROTOCOL.md §1.6). */
export const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

/** True when `s` is an RFC 3339 timestamp with a valid calendar date and time of day. */
export function isRfc3339(s: string): boolean {
  if (!RFC3339_RE.test(s)) return false
  const month = Number(s.slice(5, 7))
  const day = Number(s.slice(8, 10))
  const hour = Number(s.slice(11, 13))
  const minute = Number(s.slice(14, 16))
  const second = Number(s.slice(17, 19))
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60) return false
  const year = Number(s.slice(0, 4))
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0
  return day <= days
}

export const timestamp = v.pipe(v.string(), v.check(isRfc3339, 'timestamp must be RFC 3339'))
export const int64 = v.pipe(v.number(), v.safeInteger())
export const int32 = v.pipe(v.number(), v.integer(), v.minValue(-2147483648), v.maxValue(2147483647))

/**
 * A key with Go zero-value semantics: `null` or absent becomes the zero value (§1.3). Required-key presence is
 * checked before validation, so absence only reaches here for keys that are not required.
 */
export function required<T extends v.GenericSchema, Z>(schema: T, zero: Z) {
  return v.pipe(
    v.optional(v.nullable(schema), null),
    v.transform((x): v.InferOutput<T> | Z => (x === null || x === undefined ? zero : (x as v.InferOutput<T>))),
  )
}

/** An optional key: `null` and absent are the same thing (§3 A.14). */
export function optional<T extends v.GenericSchema>(schema: T) {
  return v.pipe(
    v.optional(v.nullable(schema), null),
    v.transform((x): v.InferOutput<T> | undefined => (x === null ? undefined : (x as v.InferOutput<T>))),
  )
}

type UndefinedKeys<T> = { [K in keyof T]-?: undefined extends T[K] ? K : never }[keyof T]
/** Makes every key whose type admits `undefined` optional (validator outputs → friendly request types). */
export type Loose<T> = { [K in Exclude<keyof T, UndefinedKeys<T>>]: T[K] } & { [K in UndefinedKeys<T>]?: T[K] }

/** A JSON object (valibot's `object` alone also accepts arrays). */
export function jsonObject<T extends v.ObjectEntries>(entries: T) {
  return v.pipe(
    v.custom<unknown>((x) => !Array.isArray(x)),
    v.object(entries),
  )
}

/** Schema pair carried by every POST body. */
export const schemaPair = {
  schema_version: required(int64, 0),
  schema_hash: required(v.string(), ''),
}

/** A row as it leaves the server (pull change, snapshot record, conflict server_version). */
export interface SyncRecord {
  id: string
  table_name: string
  data: { [column: string]: unknown }
  updated_at: string
  deleted_at?: string
}

export interface DeleteEntry {
  id: string
  table_name: string
}

export const recordSchema = v.object({
  id: v.string(),
  table_name: v.string(),
  data: v.record(v.string(), v.unknown()),
  updated_at: v.string(),
  deleted_at: v.optional(v.string()),
})

export const deleteEntrySchema = v.object({ id: v.string(), table_name: v.string() })

/** Pull/snapshot page size rules: absent or ≤0 → 100; >1000 → 1000. */
export function clampLimit(limit: number | undefined): number {
  if (limit === undefined || limit <= 0) return DEFAULT_LIMIT
  return Math.min(limit, MAX_LIMIT)
}

export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 1000
export const MAX_PUSH_CHANGES = 1000
export const DEFAULT_BODY_LIMIT = 10 * 1024 * 1024

/** Changelog operation codes (DB only). */
export const OP_INSERT = 1
export const OP_UPDATE = 2
export const OP_DELETE = 3
export type ChangelogOp = 1 | 2 | 3
