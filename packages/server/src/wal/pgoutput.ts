import { WalDecodeError } from './errors.js'

/**
 * Decoder for pgoutput protocol versions 1 and 2 (PostgreSQL docs, "Logical Replication Message Formats").
 * Values arrive in text format: exactly what the column type's output function prints. Version 2 adds streamed
 * in-progress transactions: Stream Start … Stop blocks whose messages carry the (sub)transaction id, and Stream
 * Commit / Stream Abort.
 */

/** One column value of a tuple: text, SQL NULL, or "unchanged TOAST value, not sent". */
export type TupleValue = string | null | typeof UNCHANGED

/** Marker for an unchanged TOASTed column ('u'): the value was not sent and must be taken from elsewhere. */
export const UNCHANGED: unique symbol = Symbol('unchanged-toast')

export interface RelationColumn {
  name: string
  typeOid: number
  typeMod: number
  /** Part of the replica identity (key). */
  isKey: boolean
}

export interface RelationMessage {
  tag: 'relation'
  /** Inside a stream block: the transaction that sent it. */
  xid?: number
  relationId: number
  namespace: string
  name: string
  /** d = default, n = nothing, f = full, i = index. */
  replicaIdentity: string
  columns: RelationColumn[]
}

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: bigint; commitTime: bigint; xid: number }
  | { tag: 'commit'; flags: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint }
  | { tag: 'origin'; originLsn: bigint; name: string }
  | RelationMessage
  | { tag: 'type'; xid?: number; typeOid: number; namespace: string; name: string }
  | { tag: 'insert'; xid?: number; relationId: number; newTuple: TupleValue[] }
  | {
      tag: 'update'
      xid?: number
      relationId: number
      /** Old values: the whole row with REPLICA IDENTITY FULL ('O'), the key only ('K'), or absent. */
      oldTuple: TupleValue[] | null
      oldKind: 'O' | 'K' | null
      newTuple: TupleValue[]
    }
  | { tag: 'delete'; xid?: number; relationId: number; oldTuple: TupleValue[]; oldKind: 'O' | 'K' }
  | { tag: 'truncate'; xid?: number; relationIds: number[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'message'; xid?: number; prefix: string }
  /** Version 2: a block of an in-progress transaction follows (`first`: its first block). */
  | { tag: 'stream_start'; xid: number; first: boolean }
  | { tag: 'stream_stop' }
  | { tag: 'stream_commit'; xid: number; flags: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint }
  /** `subxid` equal to `xid`: the whole transaction aborted; otherwise only that subtransaction. */
  | { tag: 'stream_abort'; xid: number; subxid: number }

const decoder = new TextDecoder('utf-8', { fatal: false })

/** A cursor over one message buffer. */
class Reader {
  pos = 0
  constructor(readonly buf: Buffer) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new WalDecodeError('pgoutput message truncated')
  }
  u8(): number {
    this.need(1)
    return this.buf[this.pos++] as number
  }
  i16(): number {
    this.need(2)
    const v = this.buf.readInt16BE(this.pos)
    this.pos += 2
    return v
  }
  i32(): number {
    this.need(4)
    const v = this.buf.readInt32BE(this.pos)
    this.pos += 4
    return v
  }
  u32(): number {
    this.need(4)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }
  u64(): bigint {
    this.need(8)
    const v = this.buf.readBigUInt64BE(this.pos)
    this.pos += 8
    return v
  }
  i64(): bigint {
    this.need(8)
    const v = this.buf.readBigInt64BE(this.pos)
    this.pos += 8
    return v
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos)
    if (end < 0) throw new WalDecodeError('pgoutput string not terminated')
    const s = decoder.decode(this.buf.subarray(this.pos, end))
    this.pos = end + 1
    return s
  }
  /**
   * A tuple's values. With `prev` (the old tuple of the same update, decoded by the previous call), a value whose
   * bytes equal the old value's reuses that string: an update's unchanged columns are decoded once, not twice.
   * With `keep`, only the columns it marks (index < its length: always) are decoded; the others stay holes
   * (undefined), so no string is made for a value nobody reads.
   */
  tuple(prev: TupleValue[] | null = null, keep: Uint8Array | null = null): TupleValue[] {
    const n = this.i16()
    const out: TupleValue[] = new Array(n)
    const buf = this.buf
    for (let i = 0; i < n; i++) {
      const kind = this.u8()
      const skip = keep !== null && i < keep.length && keep[i] === 0
      if (kind === 0x6e /* n */) {
        if (!skip) out[i] = null
      } else if (kind === 0x75 /* u */) {
        if (!skip) out[i] = UNCHANGED
      } else if (kind === 0x74 /* t */ || kind === 0x62 /* b */) {
        const len = this.i32()
        this.need(len)
        const start = this.pos
        this.pos += len
        if (skip) continue
        if (prev !== null && i < prev.length && typeof prev[i] === 'string' && VALUE_LEN[i] === len) {
          if (sameBytes(buf, VALUE_START[i] as number, start, len)) {
            out[i] = prev[i] as string
            continue
          }
        }
        // toString on the range: no intermediate Buffer view per value (invalid UTF-8 becomes U+FFFD, as before).
        out[i] = buf.toString('utf8', start, start + len)
        if (i < MAX_COLUMNS) {
          VALUE_START[i] = start
          VALUE_LEN[i] = len
        }
      } else throw new WalDecodeError(`unknown tuple value kind 0x${kind.toString(16)}`)
    }
    return out
  }
}

/** PostgreSQL's limit on a table's columns (MaxTupleAttributeNumber). */
const MAX_COLUMNS = 1664
/**
 * Byte range of each string value of the last tuple decoded (valid for the message being decoded only: entries
 * not set by the last tuple belong to no string of it, and `prev[i]` must be that tuple's string to be used).
 */
const VALUE_START = new Int32Array(MAX_COLUMNS)
const VALUE_LEN = new Int32Array(MAX_COLUMNS).fill(-1)

function sameBytes(buf: Buffer, a: number, b: number, len: number): boolean {
  if (len > 64) return buf.compare(buf, a, a + len, b, b + len) === 0
  for (let k = 0; k < len; k++) if (buf[a + k] !== buf[b + k]) return false
  return true
}

/** Which columns of a relation's tuples to decode (see Reader.tuple); null: all of them. */
export type ColumnMask = (relationId: number) => Uint8Array | null

/**
 * Decodes one pgoutput message (the payload of an XLogData CopyData message). `inStream`: the message is inside a
 * Stream Start … Stop block (version 2), where data messages begin with the transaction id. `mask`: the columns to
 * decode of a row message's tuples, by relation (the others are left out of the tuple arrays).
 */
export function decodePgoutput(buf: Buffer, inStream = false, mask?: ColumnMask): PgoutputMessage {
  const r = new Reader(buf)
  const tag = r.u8()
  return decodeBody(r, tag, inStream, mask)
}

/** Tags of the messages that carry a transaction id inside a stream block. */
const STREAMED_XID_TAGS = new Set([0x52, 0x59, 0x49, 0x55, 0x44, 0x54, 0x4d])

function decodeBody(r: Reader, tag: number, inStream: boolean, mask?: ColumnMask): PgoutputMessage {
  if (inStream && STREAMED_XID_TAGS.has(tag)) {
    const xid = r.u32()
    const msg = decodeBody(r, tag, false, mask)
    ;(msg as { xid?: number }).xid = xid
    return msg
  }
  switch (tag) {
    case 0x42 /* B */:
      return { tag: 'begin', finalLsn: r.u64(), commitTime: r.i64(), xid: r.u32() }
    case 0x43 /* C */:
      return { tag: 'commit', flags: r.u8(), commitLsn: r.u64(), endLsn: r.u64(), commitTime: r.i64() }
    case 0x4f /* O */:
      return { tag: 'origin', originLsn: r.u64(), name: r.cstring() }
    case 0x52 /* R */:
      {
        const relationId = r.u32()
        const namespace = r.cstring()
        const name = r.cstring()
        const replicaIdentity = String.fromCharCode(r.u8())
        const n = r.i16()
        const columns: RelationColumn[] = []
        for (let i = 0; i < n; i++) {
          const flags = r.u8()
          columns.push({ isKey: (flags & 1) === 1, name: r.cstring(), typeOid: r.u32(), typeMod: r.i32() })
        }
        // pg_catalog is sent as an empty namespace; the relation itself is never in it, but be exact anyway.
        return { tag: 'relation', relationId, namespace: namespace || 'pg_catalog', name, replicaIdentity, columns }
      }
    case 0x59 /* Y */:
      return { tag: 'type', typeOid: r.u32(), namespace: r.cstring(), name: r.cstring() }
    case 0x49 /* I */:
      {
        const relationId = r.u32()
        const k = r.u8()
        if (k !== 0x4e) throw new WalDecodeError('insert without new tuple')
        return { tag: 'insert', relationId, newTuple: r.tuple(null, mask ? mask(relationId) : null) }
      }
    case 0x55 /* U */:
      {
        const relationId = r.u32()
        const keep = mask ? mask(relationId) : null
        let k = r.u8()
        let oldTuple: TupleValue[] | null = null
        let oldKind: 'O' | 'K' | null = null
        if (k === 0x4b /* K */ || k === 0x4f /* O */) {
          oldKind = k === 0x4b ? 'K' : 'O'
          oldTuple = r.tuple(null, keep)
          k = r.u8()
        }
        if (k !== 0x4e) throw new WalDecodeError('update without new tuple')
        return { tag: 'update', relationId, oldTuple, oldKind, newTuple: r.tuple(oldTuple, keep) }
      }
    case 0x44 /* D */:
      {
        const relationId = r.u32()
        const k = r.u8()
        if (k !== 0x4b && k !== 0x4f) throw new WalDecodeError('delete without old tuple')
        return {
          tag: 'delete',
          relationId,
          oldKind: k === 0x4b ? 'K' : 'O',
          oldTuple: r.tuple(null, mask ? mask(relationId) : null),
        }
      }
    case 0x54 /* T */:
      {
        const n = r.u32()
        const options = r.u8()
        const relationIds: number[] = []
        for (let i = 0; i < n; i++) relationIds.push(r.u32())
        return { tag: 'truncate', relationIds, cascade: (options & 1) === 1, restartIdentity: (options & 2) === 2 }
      }
    case 0x4d /* M */:
      {
        r.u8()
        r.u64()
        return { tag: 'message', prefix: r.cstring() }
      }
    case 0x53 /* S */:
      return { tag: 'stream_start', xid: r.u32(), first: r.u8() === 1 }
    case 0x45 /* E */:
      return { tag: 'stream_stop' }
    case 0x63 /* c */:
      return {
        tag: 'stream_commit',
        xid: r.u32(),
        flags: r.u8(),
        commitLsn: r.u64(),
        endLsn: r.u64(),
        commitTime: r.i64(),
      }
    case 0x41 /* A */:
      // Protocol 4 appends the abort LSN and time (parallel apply only); not requested here.
      return { tag: 'stream_abort', xid: r.u32(), subxid: r.u32() }
    default:
      throw new WalDecodeError(`unknown pgoutput message tag 0x${tag.toString(16)}`)
  }
}
