/**
 * Record ids arrive as free text. We canonicalise them in JS to PostgreSQL's own rendering of the id column's type
 * so that (1) one malformed id cannot make a whole batch statement fail with a cast error and (2) `id = ANY($1)`
 * keeps using the primary-key index. Types we do not know are compared as text (`id::text = ANY($1::text[])`).
 */
export type IdKind = 'uuid' | 'int' | 'text' | 'other'

const INT_RANGE: { [t: string]: [bigint, bigint] } = {
  smallint: [-32768n, 32767n],
  integer: [-2147483648n, 2147483647n],
  bigint: [-9223372036854775808n, 9223372036854775807n],
}

/** How the id column of a table is compared, from its catalog type (`format_type`). */
export function idKindOf(dbType: string): IdKind {
  const t = dbType.trim().toLowerCase()
  if (t === 'uuid') return 'uuid'
  if (t in INT_RANGE) return 'int'
  if (t === 'text' || t.startsWith('character varying') || t === 'varchar') return 'text'
  return 'other'
}

// PostgreSQL's uuid_in: optional braces, groups of 4 hex digits optionally separated by '-'.
const UUID_RE = /^(\{)?[0-9a-fA-F]{4}(-?[0-9a-fA-F]{4}){7}(\})?$/
// Already PostgreSQL's rendering (what clients send): returned as is, without rebuilding it.
const CANONICAL_UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The canonical text of `raw` for an id column of `dbType`, or undefined when PostgreSQL would reject it. */
export function canonicalId(raw: string, kind: IdKind, dbType: string): string | undefined {
  if (raw.includes('\u0000')) return undefined
  switch (kind) {
    case 'uuid': {
      if (CANONICAL_UUID_RE.test(raw)) return raw
      const m = UUID_RE.exec(raw)
      if (!m || Boolean(m[1]) !== Boolean(m[3])) return undefined
      const hex = raw.replace(/[{}-]/g, '').toLowerCase()
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
    }
    case 'int': {
      const s = raw.trim()
      if (!/^[+-]?\d{1,20}$/.test(s)) return undefined
      const n = BigInt(s)
      const range = INT_RANGE[dbType.trim().toLowerCase()]
      if (!range || n < range[0] || n > range[1]) return undefined
      return n.toString()
    }
    default:
      return raw
  }
}
