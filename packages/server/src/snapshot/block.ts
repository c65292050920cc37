import type { SyncRecord } from '@synchro/protocol'
import { wireData, wireRecord } from '../pull/record.js'
import type { RecordBytes } from './convert.js'
import type { TextRow } from './readahead.js'

/** Bytes of `{"id":` before a record's id, and of `,"updated_at":` before its stamp. */
const ID_AT = 6
const STAMP_AT = 14

/**
 * A row of records converted in this process (`convertRows`): a TextRow whose fields are decoded only when read — a
 * page turns it into a wire record (`record`), whose bytes the response body copies.
 */
export class BlockRow implements TextRow {
  #id: string | undefined

  constructor(
    readonly block: RecordBytes,
    readonly index: number,
  ) {}

  /** The id, as `id::text` renders it. */
  get id(): string {
    this.#id ??= blockId(this.block, this.index)
    return this.#id
  }

  get data(): string {
    return wireData(this.block, this.index)
  }

  /** As the SQL rendering reads (`sqlRfc3339Json`: quoted, no Z); `wirePageUpdatedAt` makes `wireUpdatedAt` of it. */
  get updated_at(): string {
    return `"${this.wireUpdatedAt.slice(0, -1)}"`
  }

  /** The wire `updated_at`. */
  get wireUpdatedAt(): string {
    return blockStamp(this.block, this.index)
  }

  /** True when its data nests deeper than the limit it was converted with (left out of pages, Decision 35). */
  get deep(): boolean {
    return this.block.deep[this.index] === 1
  }

  /** The page record of this row of table `tableName`. */
  record(tableName: string): SyncRecord {
    return wireRecord(this.block, this.index, this.id, tableName, this.wireUpdatedAt)
  }
}

/** The id of record `i` of `block`, as `id::text` renders it. */
export function blockId(block: RecordBytes, i: number): string {
  const { bytes, offsets } = block
  const a = (offsets[4 * i] as number) + ID_AT
  const b = offsets[4 * i + 1] as number
  // A JSON string without escapes holds its text as it is.
  let escaped = false
  for (let j = a + 1; j < b - 1 && !escaped; j++) escaped = bytes[j] === 0x5c
  return escaped ? (JSON.parse(bytes.toString('utf8', a, b)) as string) : bytes.toString('utf8', a + 1, b - 1)
}

/** The wire `updated_at` of record `i` of `block`. */
export function blockStamp(block: RecordBytes, i: number): string {
  const { bytes, offsets } = block
  return bytes.toString('latin1', (offsets[4 * i + 2] as number) + STAMP_AT + 1, (offsets[4 * i + 3] as number) - 2)
}

/** The rows of `block`, in order. */
export function blockRows(block: RecordBytes): BlockRow[] {
  const rows = new Array<BlockRow>(block.count)
  for (let i = 0; i < block.count; i++) rows[i] = new BlockRow(block, i)
  return rows
}
