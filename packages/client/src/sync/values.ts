/**
 * Conversions between wire values (JSON, PROTOCOL.md §1.6 and Decisions 23/27) and SQLite storage (§2.3:
 * string/datetime/date/time/json → TEXT, int/int64/boolean → INTEGER, float → REAL, bytes → BLOB; a `numeric` wider
 * than a double → no affinity, see sqliteColumnType). Numbers are exact both ways: the wire JSON is parsed and
 * rendered by @synchro/protocol's lossless codec, so int64 values arrive as bigint beyond 2^53 and long decimals as
 * JsonDecimal.
 */
import {
  JsonDecimal,
  type LogicalType,
  numberFromLiteral,
  parseJsonLossless,
  type SchemaColumn,
  stringifyJsonLossless,
} from '@synchro/protocol'
import type { SqlValue } from '../driver.js'
import { quoteIdent } from '../store/sql.js'
import { parseInstant, toRfc3339 } from '../timestamps.js'

const HEX = '0123456789abcdef'

/** Bytes → PostgreSQL hex text `\x0102` (Decision 27). */
export function bytesToPgHex(bytes: Uint8Array): string {
  let s = '\\x'
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    s += HEX[b >> 4]! + HEX[b & 15]!
  }
  return s
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** PostgreSQL hex text `\x0102` → bytes; null when the text is not hex bytea. */
export function pgHexToBytes(text: string): Uint8Array | null {
  if (!text.startsWith('\\x') || text.length % 2 !== 0) return null
  const out = new Uint8Array((text.length - 2) / 2)
  for (let i = 0; i < out.length; i++) {
    const hi = hexDigit(text.charCodeAt(2 + 2 * i))
    const lo = hexDigit(text.charCodeAt(3 + 2 * i))
    if (hi < 0 || lo < 0) return null
    out[i] = (hi << 4) | lo
  }
  return out
}

/** Is this a PostgreSQL array column (`text[]`, `integer[]`…)? Those are logical `json` but arrays on the wire. */
export function isArrayColumn(col: SchemaColumn): boolean {
  return col.db_type.trim().endsWith('[]')
}

/** A wire value (from pull, snapshot or a conflict's server_version) → the value stored in SQLite. */
export function wireToSqlite(type: LogicalType, value: unknown): SqlValue {
  if (value === null || value === undefined) return null
  switch (type) {
    case 'boolean':
      if (typeof value === 'boolean') return value ? 1 : 0
      break
    case 'json':
      // Stored as JSON text so that it round-trips as the same JSON value (Decision 23), numbers exact.
      return stringifyJsonLossless(value)
    case 'bytes':
      if (typeof value === 'string') return pgHexToBytes(value) ?? value
      break
    case 'float':
      // Beyond a double: the exact decimal text, kept as such by an exact-numeric column (no affinity).
      if (typeof value === 'bigint') return value.toString()
      break
    default:
      break
  }
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return value
  if (typeof value === 'boolean') return value ? 1 : 0
  if (value instanceof JsonDecimal) return value.text
  return stringifyJsonLossless(value)
}

/**
 * The select-list item reading `col` for a push. int64 columns are read as text: drivers return INTEGER as a
 * double by default, which rounds values beyond 2^53; the text is exact in every driver.
 */
export function readColumnSql(col: SchemaColumn): string {
  const name = quoteIdent(col.name)
  return col.logical_type === 'int64' ? `CAST(${name} AS TEXT) AS ${name}` : name
}

const NUMBER_TEXT = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/

/** A number's text (int64 column read by readColumnSql, exact decimal) → its exact wire value; other text as is. */
function numberFromText(text: string): unknown {
  const m = NUMBER_TEXT.exec(text)
  return m ? numberFromLiteral(text, m[1] === undefined && m[2] === undefined) : text
}

/** A value read from SQLite → the JSON value pushed to the server (rendered by stringifyJsonLossless). */
export function sqliteToWire(col: SchemaColumn, value: unknown): unknown {
  if (value === null || value === undefined) return null
  switch (col.logical_type) {
    case 'boolean':
      if (typeof value === 'number' || typeof value === 'bigint') return value !== 0 && value !== 0n
      if (value === 'true' || value === 'false') return value === 'true'
      return value
    case 'json':
      if (typeof value === 'string') {
        // PostgreSQL's empty array literal is what the portable default of `'{}'::text[]` leaves in SQLite.
        if (value === '{}' && isArrayColumn(col)) return []
        try {
          return parseJsonLossless(value)
        } catch {
          return value
        }
      }
      return value
    case 'bytes':
      if (value instanceof Uint8Array) return bytesToPgHex(value)
      return value
    case 'datetime':
      return typeof value === 'string' ? toRfc3339(value) : value
    case 'int':
    case 'int64':
    case 'float':
      if (typeof value === 'string') return numberFromText(value)
      if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value
      return value
    default:
      if (value instanceof Uint8Array) return bytesToPgHex(value)
      return value
  }
}

/**
 * Whether two wire values of `col` are the same value: timestamps as instants (PostgreSQL renders an offset where
 * the app may have written `Z`), JSON by value (jsonb orders object keys its own way), numbers by their exact text
 * (a number, bigint or JsonDecimal depending on its size). False when unsure: callers treat that as "different".
 */
export function sameWireValue(col: SchemaColumn, a: unknown, b: unknown): boolean {
  if (col.logical_type === 'datetime' && typeof a === 'string' && typeof b === 'string' && a !== b) {
    const x = parseInstant(a)
    const y = parseInstant(b)
    return x !== null && y !== null && x.seconds === y.seconds && x.nanos === y.nanos
  }
  return sameJson(a, b)
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (isExactNumber(a) || isExactNumber(b)) {
    return isExactNumber(a) && isExactNumber(b) && stringifyJsonLossless(a) === stringifyJsonLossless(b)
  }
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]))
  }
  const x = a as { [k: string]: unknown }
  const y = b as { [k: string]: unknown }
  const keys = Object.keys(x)
  return keys.length === Object.keys(y).length && keys.every((k) => Object.hasOwn(y, k) && sameJson(x[k], y[k]))
}

function isExactNumber(v: unknown): boolean {
  return typeof v === 'number' || typeof v === 'bigint' || v instanceof JsonDecimal
}
