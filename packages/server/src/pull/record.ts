/**
 * Records of pull and snapshot pages that carry their row's `data` as the JSON text PostgreSQL rendered, instead of
 * a parsed object. Parsing a page's 1 000 rows in Node and serialising them again measured ≈ 4 ms per page, more than
 * half of what PostgreSQL spends reading and rendering them; a response body now splices the text through untouched
 * (`renderJson`). PostgreSQL's rendering is exact (bigints and numerics as their full literal), so passing its text
 * through is lossless by construction.
 *
 * Engine callers still see a plain SyncRecord: `data` is an own enumerable property that parses the text (exactly,
 * `parseJsonLossless`) on first read, so `JSON.stringify`, property access and deep equality behave as before.
 */
import { parseJsonLossless, type SyncRecord, stringifyJsonLossless } from '@synchro/protocol'
import pg from 'pg'

const JSON_OID = 114
const JSONB_OID = 3802

/** node-postgres `types` option: json and jsonb columns arrive as their text (no parse), every other type as usual. */
export const JSON_TEXT_TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if ((oid === JSON_OID || oid === JSONB_OID) && format !== 'binary') return (text: string) => text
    return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown
  },
} as pg.CustomTypesConfig

/** A SyncRecord whose `data` is kept as JSON text until someone reads it. */
class TextRecord {
  declare data: { [column: string]: unknown }
  readonly #text: string
  #parsed: { [column: string]: unknown } | undefined
  deleted_at?: string

  constructor(
    readonly id: string,
    readonly table_name: string,
    text: string,
    readonly updated_at: string,
    deletedAt: string | undefined,
  ) {
    this.#text = text
    // Own and enumerable, in the wire's key order (id, table_name, data, updated_at, deleted_at).
    Object.defineProperty(this, 'data', {
      enumerable: true,
      configurable: true,
      get: () => {
        if (this.#parsed === undefined) this.#parsed = parseJsonLossless(this.#text) as { [column: string]: unknown }
        return this.#parsed
      },
    })
    if (deletedAt !== undefined) this.deleted_at = deletedAt
  }

  /** The record's wire JSON, `data` spliced in as PostgreSQL rendered it. */
  static wire(r: TextRecord): string {
    const deleted = r.deleted_at === undefined ? '' : `,"deleted_at":${JSON.stringify(r.deleted_at)}`
    return `{"id":${JSON.stringify(r.id)},"table_name":${JSON.stringify(r.table_name)},"data":${r.#text},"updated_at":${JSON.stringify(r.updated_at)}${deleted}}`
  }
}

/**
 * A record of a page from its row's JSON text (`data` must be one JSON object as PostgreSQL rendered it: `to_json`,
 * `json_build_object`, jsonb).
 */
export function textRecord(
  id: string,
  tableName: string,
  dataText: string,
  updatedAt: string,
  deletedAt?: string,
): SyncRecord {
  return new TextRecord(id, tableName, dataText, updatedAt, deletedAt)
}

/**
 * `stringifyJsonLossless` for response bodies, with every top-level array of page records (pull `changes`, snapshot
 * `records`) rendered by splicing each record's text: no parse, no re-serialisation of row data.
 */
export function renderJson(body: unknown): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return stringifyJsonLossless(body)
  const spliced: string[] = []
  let envelope: { [key: string]: unknown } | undefined
  for (const [key, value] of Object.entries(body)) {
    if (!Array.isArray(value) || !(value[0] instanceof TextRecord)) continue
    envelope ??= { ...body }
    const parts = value.map((r: unknown) => (r instanceof TextRecord ? TextRecord.wire(r) : stringifyJsonLossless(r)))
    envelope[key] = SPLICE + spliced.length
    spliced.push(`[${parts.join(',')}]`)
  }
  if (!envelope) return stringifyJsonLossless(body)
  return stringifyJsonLossless(envelope).replace(SPLICE_RE, (_m, i: string) => spliced[Number(i)] as string)
}

/** Placeholder of a spliced array in the envelope (a string no other envelope value can equal: see renderJson). */
const SPLICE = `\u0000synchro-page-records-`
// biome-ignore lint/suspicious/noControlCharactersInRegex: the placeholder starts with NUL (escaped as \u0000 in JSON), which no protocol value carries.
const SPLICE_RE = /"\\u0000synchro-page-records-(\d+)"/g

/**
 * True when the JSON text `text` nests deeper than `max` levels — `nestedDeeperThan` of its parsed value, read from
 * the text: each `{` / `[` outside a string opens a level. Text with at most `max` brackets in all cannot be deeper,
 * which settles nearly every row after one cheap count.
 */
export function jsonTextDeeperThan(text: string, max: number): boolean {
  let brackets = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x7b || c === 0x5b) {
      if (++brackets > max) return deeperScan(text, max)
    }
  }
  return false
}

function deeperScan(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}
