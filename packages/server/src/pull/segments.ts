/**
 * Page records kept as segments until something reads them. A snapshot page of converted rows (snapshot/convert.ts)
 * is a few runs of consecutive records of one buffer; a response body splices each run's bytes in one copy
 * (`renderJson`). Building a record object per row first (`wireRecord`: its id and stamp decoded, the record
 * stamped, each then peeked again by the render) only to splice the same bytes cost about a third of the Node CPU
 * of a converted page. The body's `records` stays an array of records for every reader: read, it is built then.
 */
import type { SyncRecord } from '@synchro/protocol'
import type { WireRecords } from './record.js'

/**
 * Records `from` to `to - 1` of `wire`, of table `tableName`: one segment of a page, its bytes one range of the
 * buffer (`wire.bytes[offsets[4 from], offsets[4 (to - 1) + 3])`, the records comma-separated as the body has them).
 */
export class WireRun<W extends WireRecords = WireRecords> {
  constructor(
    readonly wire: W,
    readonly from: number,
    public to: number,
    readonly tableName: string,
  ) {}
}

/** A page's records as it holds them: runs of wire records, and records. */
export type Segment = WireRun | SyncRecord

/** A body's records not read yet: its key, their segments and count, and the getter that builds them. */
interface Unread {
  key: string
  segments: readonly Segment[]
  count: number
  get: () => SyncRecord[]
}

const UNREAD = new WeakMap<object, Unread>()

/**
 * Makes `body[key]` — an own property already: it keeps its place among the keys — the `count` records of
 * `segments`, built by `materialize` on first read: an own enumerable accessor that then becomes a plain data
 * property holding them (so does an assignment). Until then `unreadRecords` hands the segments to the render.
 */
export function lazyRecords<S extends Segment>(
  body: object,
  key: string,
  segments: readonly S[],
  count: number,
  materialize: (segments: readonly S[]) => SyncRecord[],
): void {
  let records: SyncRecord[] | undefined
  const settle = (value: SyncRecord[]) => {
    records = value
    UNREAD.delete(body)
    // Not on a frozen body: the getter answers the records it kept then.
    Reflect.defineProperty(body, key, { value, writable: true, enumerable: true, configurable: true })
  }
  const get = () => {
    if (records === undefined) settle(materialize(segments))
    return records as SyncRecord[]
  }
  Object.defineProperty(body, key, { get, set: settle, enumerable: true, configurable: true })
  UNREAD.set(body, { key, segments, count, get })
}

/**
 * The unread records of `body` (see `lazyRecords`), undefined once they were read, assigned or their property
 * redefined: the body renders what it holds then.
 */
export function unreadRecords(body: object): Omit<Unread, 'get'> | undefined {
  const unread = UNREAD.get(body)
  return unread && Object.getOwnPropertyDescriptor(body, unread.key)?.get === unread.get ? unread : undefined
}
