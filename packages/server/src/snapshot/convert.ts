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
import { INTEGER_ID_TYPES, TEXT_ID_TYPES } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { logicalTypeOf } from '../schema/types.js'
import { quoteIdent } from '../util/sql.js'
import { CONVERT_WASM } from './convert-wasm.js'

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
  /** The id column of a uuid or text id: the record's id JSON string again (not read from the text). */
  IdString = 8,
  /** The id column of an integer id: the record's id without its quotes (not read from the text). */
  IdNumber = 9,
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
  /**
   * The select list: id as text, each column (plain, or its `to_json` text) but the id column (the record's id
   * stands for it), then `updated_at AT TIME ZONE 'UTC'`, the wire stamp's source.
   */
  readonly select: string
  /**
   * `select` without its last column: the stamp is then read from the updated-at column's own text, which is the
   * same but for its offset when the session's TimeZone puts that at +00 (`convertRows` with `stampFromColumn`).
   */
  readonly selectColumnStamp: string
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
  /** The index of the updated-at column among the columns. */
  readonly stampColumn: number
  /** The plan as `convertRows`' module reads it (assembly/convert.ts, `convert`). */
  readonly wasm: Uint8Array
}

/**
 * The plan for `t` under `contract` (the columns `dataTextSql` renders, in its order), or undefined when its records
 * cannot be rendered here byte for byte: an `updated_at` that is not a synced timestamptz column (the wire stamp's
 * SQL rendering differs), `syncColumns` (rendered by `json_build_object`, which spaces its keys and values). Column
 * names go through `JSON.stringify`, which escapes them as `escape_json` does. An enum (a column whose logical type
 * is a string though its type is none of ours: an enum or a domain over one, or over text) is text to `to_json`:
 * its label escaped, as a text column; read as text, it spares PostgreSQL a `to_json` call per row.
 */
export function recordPlan(t: ResolvedTable, contract: SchemaContract, alias: string): RecordPlan | undefined {
  const columns = contract.columns.get(t.tableName) ?? []
  const stampColumn = columns.findIndex((c) => c.name === t.updatedAtColumn)
  if (columns[stampColumn]?.db_type !== 'timestamp with time zone') return undefined
  if (t.syncColumns || columns.length === 0) return undefined
  const kinds: Kind[] = []
  const select = [`${alias}.${t.q.id}::text`]
  let dateStyle = false
  for (const c of columns) {
    const col = `${alias}.${quoteIdent(c.name)}`
    const kind = kindOf(c.db_type) ?? (c.logical_type === 'string' ? Kind.Str : undefined)
    const id = c.name === t.idColumn ? idKind(c.db_type) : undefined
    kinds.push(id ?? kind ?? Kind.Json)
    dateStyle ||= kind === undefined && followsDateStyle(c)
    if (id === undefined) select.push(kind === undefined ? `to_json(${col})::text` : col)
  }
  const columnStamp = select.join(', ')
  select.push(`${alias}.${t.q.updatedAt} AT TIME ZONE 'UTC'`)
  const keys = columns.map((c, i) => ENC.encode(`${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`))
  const tableKey = ENC.encode(`,"table_name":${JSON.stringify(t.tableName)},"data":`)
  const keyBytes = keys.reduce((sum, k) => sum + k.length, tableKey.length)
  const wasm = wasmPlan(kinds, keys, tableKey)
  return {
    select: select.join(', '),
    selectColumnStamp: columnStamp,
    kinds,
    keys,
    tableKey,
    keyBytes,
    followsDateStyle: dateStyle,
    stampColumn,
    wasm,
  }
}

/** The kind of an id column whose text is its `id::text` (the record's id): uuid, text, integers; else undefined. */
function idKind(dbType: string): Kind | undefined {
  if (dbType === 'uuid' || TEXT_ID_TYPES.test(dbType)) return Kind.IdString
  return INTEGER_ID_TYPES.has(dbType) ? Kind.IdNumber : undefined
}

/**
 * The plan's bytes for the module: the kinds (a byte each, padded to 4), then per key (each column's, then the table
 * key) its offset from the plan's start and its length as two u32, then the keys' bytes.
 */
function wasmPlan(kinds: readonly Kind[], keys: readonly Uint8Array[], tableKey: Uint8Array): Uint8Array {
  const all = [...keys, tableKey]
  const table = (kinds.length + 3) & ~3
  const size = all.reduce((sum, k) => sum + k.length, table + 8 * all.length)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  out.set(kinds, 0)
  let at = table + 8 * all.length
  all.forEach((k, i) => {
    view.setUint32(table + 8 * i, at, true)
    view.setUint32(table + 8 * i + 4, k.length, true)
    out.set(k, at)
    at += k.length
  })
  return out
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

const NEWLINE = 0x0a

/** What the module exports (assembly/convert.ts). */
interface Module {
  memory: WebAssembly.Memory
  heapBase(): number
  convert(...args: number[]): number
  stopP: WebAssembly.Global
  stopO: WebAssembly.Global
  stopRows: WebAssembly.Global
}

/** `convert`'s statuses. */
const NEEDS_ROOM = 1
const BAD_COLUMNS = -1
const BACKSLASH_AT_END = -2
const NOT_UTC = -3

/** What `convertRows` with `stampFromColumn` throws for a row whose updated-at text is not at offset +00. */
export class StampNotUtc extends Error {
  constructor() {
    super('synchro: an updated-at text not at offset +00 (the session TimeZone is not UTC)')
  }
}

const COMPILED = new WebAssembly.Module(Buffer.from(CONVERT_WASM, 'base64'))
/** One instance for every conversion (they run one at a time); dropped when a conversion grew its memory past this. */
let instance: Module | undefined
const KEEP_MEMORY = 64 * 1024 * 1024

/** `a` rounded up to a multiple of 16. */
const align = (a: number) => (a + 15) & ~15

/** Grows `m`'s memory to at least `bytes`. */
function reserve(m: Module, bytes: number): void {
  const short = bytes - m.memory.buffer.byteLength
  if (short > 0) m.memory.grow(Math.ceil(short / 65536))
}

/**
 * Converts the COPY text `src` (rows of `plan.select`, or with `stampFromColumn` of `plan.selectColumnStamp`; default
 * delimiter, NULL `\N`, every row ending in a newline) into wire records. A record whose data nests deeper than
 * `maxDepth` is still written but flagged in `deep`. With `stampFromColumn`, throws StampNotUtc at the first row whose
 * updated-at text is not at +00.
 *
 * The conversion runs in WebAssembly (assembly/convert.ts, one pass: each field copied, escaped or reshaped up to the
 * tab or newline that ends it): the same loop in JavaScript took 2.5 times as long, and it is most of the CPU a
 * snapshot costs this process. Memory, laid out here: the plan, the text, four offsets and a flag per row (at most
 * one row per `fields` bytes: a row has that many delimiters), then the output, grown when a row might not fit.
 */
export function convertRows(src: Uint8Array, plan: RecordPlan, maxDepth: number, stampFromColumn = false): RecordBytes {
  if (src.length > 0 && src[src.length - 1] !== NEWLINE) throw new Error('synchro: COPY text without a final newline')
  instance ??= new WebAssembly.Instance(COMPILED).exports as unknown as Module
  const m = instance
  const n = plan.kinds.length
  // Each field of a row ends with a delimiter: the id, the columns read from the text, the stamp unless a column's.
  const fields = 1 + plan.kinds.filter((k) => k < Kind.IdString).length + (stampFromColumn ? 0 : 1)
  const maxRows = Math.floor(src.length / fields) + 1
  const planAt = align(m.heapBase())
  const srcAt = align(planAt + plan.wasm.length)
  const offsetsAt = align(srcAt + src.length + 16)
  const deepAt = offsetsAt + 16 * maxRows
  const outAt = align(deepAt + maxRows)
  let outEnd = outAt + 2 * src.length + plan.keyBytes + 65536
  reserve(m, outEnd)
  let mem = new Uint8Array(m.memory.buffer)
  mem.set(plan.wasm, planAt)
  mem.set(src, srcAt)
  let p = srcAt
  let o = outAt
  let rows = 0
  for (;;) {
    const stamp = stampFromColumn ? plan.stampColumn : -1
    const args = [planAt, n, p, srcAt + src.length, outAt, o, outEnd, offsetsAt, deepAt, rows, maxDepth, stamp]
    const status = m.convert(...args)
    p = m.stopP.value
    o = m.stopO.value
    rows = m.stopRows.value
    if (status === BAD_COLUMNS) throw new Error('synchro: COPY text does not have the columns of its plan')
    if (status === BACKSLASH_AT_END) throw new Error('synchro: COPY text with a backslash at the end of a row')
    if (status === NOT_UTC) throw new StampNotUtc()
    if (status !== NEEDS_ROOM) break
    // Room for the worst case of every row left: each byte escaped as \u00XX, plus keys.
    outEnd = Math.max(outAt + 2 * (outEnd - outAt), o + 6 * (srcAt + src.length - p) + plan.keyBytes + 1024)
    reserve(m, outEnd)
    mem = new Uint8Array(m.memory.buffer)
  }
  // Copies of their own size: read-ahead holds the records for a while and counts their bytes (`rowBytesOf`).
  const bytes = Buffer.allocUnsafeSlow(o - outAt)
  bytes.set(mem.subarray(outAt, o))
  const result: RecordBytes = {
    bytes,
    offsets: new Int32Array(m.memory.buffer, offsetsAt, 4 * rows).slice(),
    deep: mem.slice(deepAt, deepAt + rows),
    count: rows,
    tableKeyLength: plan.tableKey.length,
  }
  if (m.memory.buffer.byteLength > KEEP_MEMORY) instance = undefined
  return result
}
