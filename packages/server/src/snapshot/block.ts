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
    if (this.#id === undefined) {
      const at = 4 * this.index
      const { bytes, offsets } = this.block
      const a = (offsets[at] as number) + ID_AT
      const b = offsets[at + 1] as number
      // A JSON string without escapes holds its text as it is.
      let escaped = false
      for (let i = a + 1; i < b - 1 && !escaped; i++) escaped = bytes[i] === 0x5c
      this.#id = escaped ? (JSON.parse(bytes.toString('utf8', a, b)) as string) : bytes.toString('utf8', a + 1, b - 1)
    }
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
    const at = 4 * this.index
    const { bytes, offsets } = this.block
    return bytes.toString('latin1', (offsets[at + 2] as number) + STAMP_AT + 1, (offsets[at + 3] as number) - 2)
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

/** The rows of `block`, in order. */
export function blockRows(block: RecordBytes): BlockRow[] {
  const rows = new Array<BlockRow>(block.count)
  for (let i = 0; i < block.count; i++) rows[i] = new BlockRow(block, i)
  return rows
}
