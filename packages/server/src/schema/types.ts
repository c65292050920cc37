import type { DefaultKind, LogicalType } from '@synchro/protocol'

const SIMPLE: Record<string, LogicalType> = {
  bool: 'boolean',
  boolean: 'boolean',
  smallint: 'int',
  integer: 'int',
  int: 'int',
  int2: 'int',
  int4: 'int',
  serial: 'int',
  smallserial: 'int',
  bigint: 'int64',
  int8: 'int64',
  bigserial: 'int64',
  real: 'float',
  'double precision': 'float',
  numeric: 'float',
  decimal: 'float',
  text: 'string',
  'character varying': 'string',
  varchar: 'string',
  character: 'string',
  char: 'string',
  uuid: 'string',
  interval: 'string',
  json: 'json',
  jsonb: 'json',
  bytea: 'bytes',
  date: 'date',
  'time without time zone': 'time',
  'time with time zone': 'time',
  'timestamp without time zone': 'datetime',
  'timestamp with time zone': 'datetime',
}

/**
 * Maps a PostgreSQL formatted type (`format_type`) to its logical type (PROTOCOL.md §2.3, Decision 13).
 * Returns undefined for unsupported types. Enums and domains are resolved by the caller from the catalog.
 */
export function logicalTypeOf(dbType: string): LogicalType | undefined {
  const t = dbType.trim().toLowerCase()
  if (t.endsWith('[]')) return 'json'
  const direct = SIMPLE[t]
  if (direct) return direct
  // Length/precision modifiers: numeric(10,2), character varying(20), timestamp(3) with time zone, time(6) ….
  const stripped = t
    .replace(/\(\s*\d+(\s*,\s*-?\d+)?\s*\)/, '')
    .replace(/\s+/g, ' ')
    .trim()
  if (stripped !== t) return SIMPLE[stripped]
  return undefined
}

const TRAILING_CAST =
  /::\s*("[^"]+"|[A-Za-z_][A-Za-z0-9_ ]*(\.("[^"]+"|[A-Za-z_][A-Za-z0-9_ ]*))?(\(\s*\d+(\s*,\s*\d+)?\s*\))?(\[\])*)\s*$/

/** Strips trailing casts and one pair of wrapping parentheses, repeatedly (§2.4). */
export function normaliseDefault(sql: string): string {
  let s = sql.trim()
  for (;;) {
    const before = s
    for (;;) {
      const m = TRAILING_CAST.exec(s)
      if (!m || !endsOutsideQuotes(s, m.index)) break
      s = s.slice(0, m.index).trim()
    }
    if (s.startsWith('(') && s.endsWith(')') && wrapsWhole(s)) s = s.slice(1, -1).trim()
    if (s === before) return s
  }
}

/** True when position `i` is not inside a single-quoted literal. */
function endsOutsideQuotes(s: string, i: number): boolean {
  let inQuote = false
  for (let k = 0; k < i; k++) if (s[k] === "'") inQuote = !inQuote
  return !inQuote
}

/** True when the first '(' matches the last ')'. */
function wrapsWhole(s: string): boolean {
  let depth = 0
  let inQuote = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === "'") inQuote = !inQuote
    if (inQuote) continue
    if (c === '(') depth++
    else if (c === ')') {
      depth--
      if (depth === 0 && i < s.length - 1) return false
    }
  }
  return depth === 0
}

const QUOTED_LITERAL = /^'(?:[^']|'')*'$/
const NUMBER = /^-?\d+(\.\d+)?$/

/** SQLite translation of a PostgreSQL default expression (§2.4); undefined when not portable. */
export function sqliteDefault(defaultSql: string | undefined | null): string | undefined {
  if (defaultSql == null || defaultSql.trim() === '') return undefined
  const v = normaliseDefault(defaultSql)
  const lower = v.toLowerCase()
  if (lower === 'null') return 'NULL'
  if (lower === 'true') return '1'
  if (lower === 'false') return '0'
  if (NUMBER.test(v)) return v
  if (QUOTED_LITERAL.test(v)) return v
  if (['now()', 'current_timestamp', 'transaction_timestamp()', 'statement_timestamp()'].includes(lower)) {
    return 'CURRENT_TIMESTAMP'
  }
  if (lower === 'current_date') return 'CURRENT_DATE'
  if (lower === 'current_time') return 'CURRENT_TIME'
  return undefined
}

/** `none` when there is no default, `portable` when SQLite can run it, else `server_only` (§2.4). */
export function defaultKind(defaultSql: string | undefined | null): DefaultKind {
  if (defaultSql == null || defaultSql.trim() === '') return 'none'
  return sqliteDefault(defaultSql) === undefined ? 'server_only' : 'portable'
}
