import { JsonDecimal, parseJsonLossless, type SyncRecord, stringifyJsonLossless } from '@synchro/protocol'
import { trimRfc3339 } from '../util/time.js'
import { syncedData } from './rows.js'
import type { Item } from './validate.js'

/**
 * The server-set columns of an accepted create / update / resurrection. The client already holds what it pushed;
 * what it cannot know are the values the server chose: column defaults (created_at, sequences), values a trigger
 * changed, generated columns, and PostgreSQL's own rendering of a value (a timestamp's offset). When the stored row
 * (its synced columns) differs from the pushed `data` in any of them, the accepted result carries the stored row as
 * `server_version` — the same Record shape a conflict carries — and the client stores it at once instead of waiting
 * for the change to come back through a pull. When nothing differs the field is omitted (the common update).
 *
 * `stored`: the synced columns of the row as the write statement returned them (JSON text, `TableInfo.dataSql`: the
 * bytes pull sends for it); `updatedAt`: its stamp as rendered for the answer. The updated-at and deleted-at columns
 * are not compared: they travel as `server_updated_at` / `server_deleted_at` already. When `data` lacks a synced column the answer is known without reading the row (a
 * partial update, or a create that leaves defaults to the server): the record then parses the text only when its
 * `data` is read, so an engine caller that does not look at it never pays for the parse.
 */
export function serverSetVersion(item: Item, stored: string, updatedAt: string): SyncRecord | undefined {
  const { info } = item
  const sent = item.data ?? {}
  const stamp = (k: string) => k === info.t.updatedAtColumn || k === info.t.deletedAtColumn
  for (const k of info.synced) {
    if (!stamp(k) && !Object.hasOwn(sent, k)) return lazyVersion(item, stored, updatedAt)
  }
  const data = syncedData(info, parseJsonLossless(stored) as { [column: string]: unknown })
  let differs = false
  for (const [k, v] of Object.entries(data)) {
    if (stamp(k)) continue
    if (!Object.hasOwn(sent, k) || !sameJson(v, sent[k])) {
      differs = true
      break
    }
  }
  if (!differs) return undefined
  return { id: item.key, table_name: info.t.tableName, data, updated_at: trimRfc3339(updatedAt) }
}

/**
 * The record of `serverSetVersion` with `data` parsed (exactly) on first read; an own enumerable property, in the
 * place a plain record has it (the JSON bytes are the same). Every such record shares one getter (`lazyData`): a
 * getter created per record (an object literal's `get data()`) gives each record a map of its own, allocated in the
 * old generation and pointing at the young record — a 100-record push then kept its returned rows alive through two
 * scavenges each, and scavenges took ≈ 10 ms (bench/push under `--trace-gc`).
 */
function lazyVersion(item: Item, stored: string, updatedAt: string): SyncRecord {
  const rec = { id: item.key, table_name: item.info.t.tableName } as SyncRecord
  Object.defineProperty(rec, 'data', lazyData)
  rec.updated_at = trimRfc3339(updatedAt)
  unparsed.set(rec, { info: item.info, stored })
  return rec
}

/** Each lazy record's stored text, and its `data` once read. */
const unparsed = new WeakMap<object, { info: Item['info']; stored: string; data?: { [column: string]: unknown } }>()

const lazyData: PropertyDescriptor = {
  enumerable: true,
  configurable: true,
  get(this: SyncRecord): { [column: string]: unknown } {
    // Only lazyVersion defines this getter, always with the record's entry.
    const u = unparsed.get(this) as { info: Item['info']; stored: string; data?: { [column: string]: unknown } }
    u.data ??= syncedData(u.info, parseJsonLossless(u.stored) as { [column: string]: unknown })
    return u.data
  },
}

/** JSON value equality; object keys in any order (jsonb sorts them), numbers by their exact text. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return numeric(a, b)
  if (a instanceof JsonDecimal || b instanceof JsonDecimal) return numeric(a, b)
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    return a.every((x, i) => sameJson(x, b[i]))
  }
  const ka = Object.keys(a)
  const ob = b as { [k: string]: unknown }
  if (ka.length !== Object.keys(ob).length) return false
  return ka.every((k) => Object.hasOwn(ob, k) && sameJson((a as { [k: string]: unknown })[k], ob[k]))
}

/** Numbers arrive as number, bigint or JsonDecimal depending on their size: compare their JSON text. */
function numeric(a: unknown, b: unknown): boolean {
  const isNum = (x: unknown) => typeof x === 'number' || typeof x === 'bigint' || x instanceof JsonDecimal
  return isNum(a) && isNum(b) && stringifyJsonLossless(a) === stringifyJsonLossless(b)
}
