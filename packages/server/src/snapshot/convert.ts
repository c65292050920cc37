/**
 * Snapshot records rendered in this process from PostgreSQL's plain text output (`COPY … TO STDOUT`), byte for byte
 * what the SQL rendering (`pageColumnsSql`: `dataTextSql`, `sqlRfc3339Json`) gives for the same rows.
 *
 * Why: rendering a row's JSON costs PostgreSQL about twice its plain output functions (the per-column `to_json` calls
 * and the concatenation), and the database is what a snapshot waits for and what does not scale out. Here PostgreSQL
 * only runs its output functions (as a raw `COPY` does) and this process writes the JSON around them: keys, quotes,
 * `T` in timestamps, JSON string escapes. Columns of types not handled here are still rendered by `to_json` in the
 * statement and copied verbatim, so every table takes this path.
 *
 * Output: whole wire records `{"id":…,"table_name":…,"data":{…},"updated_at":…}`, each followed by a comma, in one
 * buffer — a page's consecutive records are one byte run (`pull/record.ts` splices it into the response body).
 */
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { logicalTypeOf } from '../schema/types.js'
import { quoteIdent } from '../util/sql.js'

/** How a column's COPY text becomes its JSON (the `to_json` rule for its type). */
enum Kind {
  /** smallint, integer, bigint: the text as is. */
  Int = 0,
  /** numeric, real, double precision: the text, quoted when it is not a JSON number (NaN, ±Infinity). */
  Float = 1,
  /** `t` / `f` → true / false. */
  Bool = 2,
  /** text, varchar, char: a JSON string (escape_json's escapes). */
  Str = 3,
  /** uuid, date, time, timetz: the text in quotes (nothing to escape; date text with DateStyle ISO). */
  Quoted = 4,
  /** JSON text: json, jsonb, and every other type, rendered by `to_json` in the statement. */
  Json = 5,
  /** timestamp: the first space becomes `T` (DateStyle ISO). */
  Ts = 6,
  /** timestamptz: as timestamp, and a whole-hour offset `±HH` gets `:00`. */
  Tstz = 7,
}

const KINDS: { [dbType: string]: Kind } = {
  smallint: Kind.Int,
  integer: Kind.Int,
  bigint: Kind.Int,
  numeric: Kind.Float,
  real: Kind.Float,
  'double precision': Kind.Float,
  boolean: Kind.Bool,
  text: Kind.Str,
  uuid: Kind.Quoted,
  date: Kind.Quoted,
  'time without time zone': Kind.Quoted,
  'time with time zone': Kind.Quoted,
  json: Kind.Json,
  jsonb: Kind.Json,
  'timestamp without time zone': Kind.Ts,
  'timestamp with time zone': Kind.Tstz,
}

/** The kind of a column of type `dbType` (format_type), or undefined: rendered by `to_json` in the statement. */
function kindOf(dbType: string): Kind | undefined {
  const kind = KINDS[dbType]
  if (kind !== undefined) return kind
  if (/^(character varying|character)(\(\d+\))?$/.test(dbType)) return Kind.Str
  if (/^numeric\(\d+(,-?\d+)?\)$/.test(dbType)) return Kind.Float
  // time(p) / timestamp(p) with a precision: same output as without.
  const m = /^(time|timestamp)\(\d\) (with|without) time zone$/.exec(dbType)
  return m ? KINDS[`${m[1]} ${m[2]} time zone`] : undefined
}

/**
 * True when `to_json` of column `c` (a type `kindOf` leaves to it) may follow DateStyle, which `readTableWire` sets to
 * ISO for the COPY: `to_json` writes a date or timestamp itself whatever DateStyle, but a range (or a composite or
 * type holding one) through its output function, which follows it — `to_json(tstzrange[])` under DateStyle SQL
 * writes `02/01/2026 03:04:05 UTC`. Scalars, enums, domains over them and arrays of supported scalars cannot hold
 * one; arrays of other types, and domains that are JSON, may (domains over json or jsonb counted in: not told apart).
 */
function followsDateStyle(c: { db_type: string; logical_type?: string }): boolean {
  const element = c.db_type.replace(/(\[\])+$/, '')
  if (element !== c.db_type) return logicalTypeOf(element) === undefined
  return logicalTypeOf(c.db_type) === undefined && c.logical_type === 'json'
}

const ENC = new TextEncoder()

/** How the rows of one table are read (`select`, after the id) and converted (`convertRows`). */
export interface RecordPlan {
  /** The select list: id as text, each column (plain, or its `to_json` text), the wire `updated_at` source. */
  readonly select: string
  /** How each column's text is converted. */
  readonly kinds: readonly Kind[]
  /** `{"name":` for the first column, `,"name":` after. */
  readonly keys: readonly Uint8Array[]
  /** `,"table_name":"…","data":` */
  readonly tableKey: Uint8Array
  /** Bytes of `keys` and `tableKey` together: what a record adds to its row's text besides values and punctuation. */
  readonly keyBytes: number
  /**
   * True when a column's `to_json` may follow DateStyle (`followsDateStyle`): the rows are rendered here only when the
   * session's DateStyle is ISO already, as the COPY's.
   */
  readonly followsDateStyle: boolean
}

/**
 * The plan for `t` under `contract` (the columns `dataTextSql` renders, in its order), or undefined when its records
 * cannot be rendered here byte for byte: an `updated_at` that is not a synced timestamptz column (the wire stamp's
 * SQL rendering differs), `syncColumns` (rendered by `json_build_object`, which spaces its keys and values). Column
 * names go through `JSON.stringify`, which escapes them as `escape_json` does.
 */
export function recordPlan(t: ResolvedTable, contract: SchemaContract, alias: string): RecordPlan | undefined {
  const columns = contract.columns.get(t.tableName) ?? []
  if (columns.find((c) => c.name === t.updatedAtColumn)?.db_type !== 'timestamp with time zone') return undefined
  if (t.syncColumns || columns.length === 0) return undefined
  const kinds: Kind[] = []
  const select = [`${alias}.${t.q.id}::text`]
  let dateStyle = false
  for (const c of columns) {
    const col = `${alias}.${quoteIdent(c.name)}`
    const kind = kindOf(c.db_type)
    kinds.push(kind ?? Kind.Json)
    dateStyle ||= kind === undefined && followsDateStyle(c)
    select.push(kind === undefined ? `to_json(${col})::text` : col)
  }
  select.push(`${alias}.${t.q.updatedAt} AT TIME ZONE 'UTC'`)
  const keys = columns.map((c, i) => ENC.encode(`${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`))
  const tableKey = ENC.encode(`,"table_name":${JSON.stringify(t.tableName)},"data":`)
  const keyBytes = keys.reduce((sum, k) => sum + k.length, tableKey.length)
  return { select: select.join(', '), kinds, keys, tableKey, keyBytes, followsDateStyle: dateStyle }
}

/**
 * Records converted from COPY text: record `i` is `bytes[offsets[4i], offsets[4i+3])` — its id's JSON string ends at
 * `offsets[4i+1]`, its data is `[offsets[4i+1] + tableKey, offsets[4i+2])` — and a comma follows it.
 */
export interface RecordBytes {
  bytes: Buffer
  /** Per record: start, end of the id's JSON, end of the data, end of the record. */
  offsets: Int32Array
  /** Per record: 1 when its data nests deeper than the limit (left out of pages, Decision 35). */
  deep: Uint8Array
  count: number
  /** Length of `,"table_name":…,"data":` (between the id and the data). */
  tableKeyLength: number
}

const NULL = ENC.encode('null')
const TRUE = ENC.encode('true')
const FALSE = ENC.encode('false')
const ID_KEY = ENC.encode('{"id":')
const UPDATED_KEY = ENC.encode(',"updated_at":')
/** The wire `updated_at` of a row without one, or an infinite one (`wirePageUpdatedAt`). */
const ZERO_TIMESTAMP = ENC.encode('"0001-01-01T00:00:00Z"')
const HEX = ENC.encode('0123456789abcdef')
const TAB = 0x09
const NEWLINE = 0x0a
const BACKSLASH = 0x5c
const QUOTE = 0x22

/**
 * Converts the COPY text `src` (rows of `plan.select`; default delimiter, NULL `\N`, every row ending in a newline)
 * into wire records. A record whose data nests deeper than `maxDepth` is still written but flagged in `deep`. One
 * pass: each field is copied, escaped or reshaped up to the tab or newline that ends it.
 */
export function convertRows(src: Uint8Array, plan: RecordPlan, maxDepth: number): RecordBytes {
  if (src.length > 0 && src[src.length - 1] !== NEWLINE) throw new Error('synchro: COPY text without a final newline')
  let out = new Uint8Array(Math.ceil(src.length * 1.9) + 4096)
  const input = Buffer.from(src.buffer, src.byteOffset, src.length) // Buffer#indexOf: a native scan
  const offsets: number[] = []
  const deep: number[] = []
  const { keys, kinds, tableKey } = plan
  const n = kinds.length
  let o = 0
  let p = 0
  while (p < src.length) {
    // Room for the worst case of this row: every byte escaped as \u00XX, plus keys (a column name JSON escapes can
    // take 6 bytes a character: no bound per column), plus the record's own keys and a NULL stamp's zero time.
    const need = o + (input.indexOf(NEWLINE, p) - p) * 6 + plan.keyBytes + 1024
    if (need > out.length) {
      const grown = new Uint8Array(Math.max(out.length * 2, need))
      grown.set(out.subarray(0, o))
      out = grown
    }
    const start = o
    o = put(out, o, ID_KEY)
    o = putString(src, p, out, o)
    p = after(src, TAB)
    const idEnd = o
    o = put(out, o, tableKey)
    opened = 1 // the data object; each `{` / `[` of a JSON value may open one more level
    for (let c = 0; c < n; c++) {
      o = put(out, o, keys[c] as Uint8Array)
      if (src[p] === BACKSLASH && src[p + 1] === 0x4e && (src[p + 2] === TAB || src[p + 2] === NEWLINE)) {
        o = put(out, o, NULL)
        next = p + 2
      } else {
        switch (kinds[c]) {
          case Kind.Int:
            o = putVerbatim(src, p, out, o)
            break
          case Kind.Float: {
            // NaN, Infinity, -Infinity: not JSON numbers, quoted (to_json's IsValidJsonNumber).
            const f = src[p]
            if (f === 0x4e || f === 0x49 || (f === 0x2d && src[p + 1] === 0x49)) o = putQuoted(src, p, out, o)
            else o = putVerbatim(src, p, out, o)
            break
          }
          case Kind.Bool:
            o = put(out, o, src[p] === 0x74 ? TRUE : FALSE)
            next = p + 1
            break
          case Kind.Str:
            o = putString(src, p, out, o)
            break
          case Kind.Quoted:
            o = putQuoted(src, p, out, o)
            break
          case Kind.Json:
            o = putJson(src, p, out, o)
            break
          default:
            o = putTimestamp(src, p, out, o, kinds[c] === Kind.Tstz)
        }
      }
      p = after(src, TAB)
    }
    out[o++] = 0x7d
    const dataEnd = o
    o = put(out, o, UPDATED_KEY)
    o = putWireTimestamp(src, p, out, o)
    p = after(src, NEWLINE)
    out[o++] = 0x7d
    offsets.push(start, idEnd, dataEnd, o)
    out[o++] = 0x2c
    deep.push(opened > maxDepth && deeperThan(out, idEnd + tableKey.length, dataEnd, maxDepth) ? 1 : 0)
  }
  // The buffer was sized for the worst case (up to twice what the records take): read-ahead holds the records for a
  // while and counts their bytes (`rowBytesOf`), so they keep a copy of their own size (one memcpy).
  const bytes = Buffer.allocUnsafeSlow(o)
  bytes.set(out.subarray(0, o))
  return {
    bytes,
    offsets: Int32Array.from(offsets),
    deep: Uint8Array.from(deep),
    count: deep.length,
    tableKeyLength: tableKey.length,
  }
}

/** Where the field a `put…` function read ends (its tab or newline): they return the output position. */
let next = 0

/** Where the next field starts, the field just read having ended with `delimiter` (else the text is not our rows). */
function after(src: Uint8Array, delimiter: number): number {
  if (src[next] !== delimiter) throw new Error('synchro: COPY text does not have the columns of its plan')
  return next + 1
}
/** `{` and `[` met in JSON values of the current row (`putJson`), plus one. */
let opened = 0

function put(out: Uint8Array, o: number, bytes: Uint8Array): number {
  const n = bytes.length
  for (let i = 0; i < n; i++) out[o + i] = bytes[i] as number
  return o + n
}

/** The field at `p` as it is. */
function putVerbatim(src: Uint8Array, p: number, out: Uint8Array, o: number): number {
  for (let b = src[p] as number; b !== TAB && b !== NEWLINE; b = src[++p] as number) out[o++] = b
  next = p
  return o
}

/** The field at `p` in quotes (text with nothing to escape). */
function putQuoted(src: Uint8Array, p: number, out: Uint8Array, o: number): number {
  out[o++] = QUOTE
  o = putVerbatim(src, p, out, o)
  out[o++] = QUOTE
  return o
}

/**
 * The byte a COPY text escape `\x` stands for (COPY TO writes \b \f \n \r \t \v and \\ only). A backslash before the
 * newline ending a row is not COPY text: read on, the field's loop would pass the end of `src` and never stop.
 */
function unescaped(b: number): number {
  switch (b) {
    case NEWLINE:
      throw new Error('synchro: COPY text with a backslash at the end of a row')
    case 0x62:
      return 0x08
    case 0x66:
      return 0x0c
    case 0x6e:
      return 0x0a
    case 0x72:
      return 0x0d
    case 0x74:
      return 0x09
    case 0x76:
      return 0x0b
    default:
      return b
  }
}

/** JSON text (COPY-escaped) at `p`, unescaped; its brackets counted in `opened`. */
function putJson(src: Uint8Array, p: number, out: Uint8Array, o: number): number {
  for (let b = src[p] as number; b !== TAB && b !== NEWLINE; b = src[++p] as number) {
    if (b === BACKSLASH) b = unescaped(src[++p] as number)
    else if (b === 0x7b || b === 0x5b) opened++
    out[o++] = b
  }
  next = p
  return o
}

/** The text at `p` (COPY-escaped) as a JSON string, with escape_json's escapes (bytes ≥ 0x80 as they are). */
function putString(src: Uint8Array, p: number, out: Uint8Array, o: number): number {
  out[o++] = QUOTE
  for (let b = src[p] as number; b !== TAB && b !== NEWLINE; b = src[++p] as number) {
    if (b === BACKSLASH) b = unescaped(src[++p] as number)
    if (b >= 0x20 && b !== QUOTE && b !== BACKSLASH) {
      out[o++] = b
      continue
    }
    out[o++] = BACKSLASH
    if (b === QUOTE || b === BACKSLASH) out[o++] = b
    else if (b === 0x08) out[o++] = 0x62
    else if (b === 0x0c) out[o++] = 0x66
    else if (b === 0x0a) out[o++] = 0x6e
    else if (b === 0x0d) out[o++] = 0x72
    else if (b === 0x09) out[o++] = 0x74
    else {
      out[o++] = 0x75
      out[o++] = 0x30
      out[o++] = 0x30
      out[o++] = HEX[b >> 4] as number
      out[o++] = HEX[b & 15] as number
    }
  }
  out[o++] = QUOTE
  next = p
  return o
}

/** True when `out[o - 3, o)` is " BC" (an era suffix). */
function endsBc(out: Uint8Array, from: number, o: number): boolean {
  return o - from > 3 && out[o - 3] === 0x20 && out[o - 2] === 0x42 && out[o - 1] === 0x43
}

/**
 * A timestamp(tz) in to_json's XSD form, from its ISO text at `p`: `T` for the space between date and time, a
 * whole-hour offset `±HH` written `±HH:00`; an era suffix " BC" and `infinity` / `-infinity` kept as they are.
 */
function putTimestamp(src: Uint8Array, p: number, out: Uint8Array, o: number, tz: boolean): number {
  out[o++] = QUOTE
  let b = src[p] as number
  for (; b !== 0x20 && b !== TAB && b !== NEWLINE; b = src[++p] as number) out[o++] = b
  if (b === 0x20) {
    out[o++] = 0x54 // T
    const time = o
    let sign = -1 // where the offset's sign was written
    for (b = src[++p] as number; b !== TAB && b !== NEWLINE; b = src[++p] as number) {
      if ((b === 0x2b || b === 0x2d) && sign < 0) sign = o
      out[o++] = b
    }
    const bc = endsBc(out, time, o)
    const stop = bc ? o - 3 : o
    if (tz && sign >= 0 && stop - sign === 3) {
      // ±HH → ±HH:00, before the era suffix if any.
      if (bc) out.copyWithin(stop + 3, stop, o)
      out[stop] = 0x3a
      out[stop + 1] = 0x30
      out[stop + 2] = 0x30
      o += 3
    }
  }
  out[o++] = QUOTE
  next = p
  return o
}

/**
 * The wire `updated_at` from the text of `updated_at AT TIME ZONE 'UTC'` (a timestamp) at `p`: `"…Z"`, an era suffix
 * dropped; NULL or infinite → the zero time (what `wirePageUpdatedAt` makes of the SQL rendering).
 */
function putWireTimestamp(src: Uint8Array, p: number, out: Uint8Array, o: number): number {
  const first = src[p]
  if (first === BACKSLASH || first === 0x69 || first === 0x2d) {
    while (src[p] !== TAB && src[p] !== NEWLINE) p++
    next = p
    return put(out, o, ZERO_TIMESTAMP)
  }
  out[o++] = QUOTE
  const from = o
  let b = src[p] as number
  for (; b !== 0x20 && b !== TAB && b !== NEWLINE; b = src[++p] as number) out[o++] = b
  if (b === 0x20) {
    out[o++] = 0x54 // T
    for (b = src[++p] as number; b !== TAB && b !== NEWLINE; b = src[++p] as number) out[o++] = b
  }
  if (endsBc(out, from, o)) o -= 3
  out[o++] = 0x5a // Z
  out[o++] = QUOTE
  next = p
  return o
}

/** True when the JSON text `text[a, b)` nests deeper than `max` (`jsonTextDeeperThan` on bytes). */
function deeperThan(text: Uint8Array, a: number, b: number, max: number): boolean {
  let depth = 0
  for (let i = a; i < b; i++) {
    const c = text[i]
    if (c === QUOTE) {
      for (i++; i < b && text[i] !== QUOTE; i++) if (text[i] === BACKSLASH) i++
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}
