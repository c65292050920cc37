import type { SchemaContract } from '../schema/contract.js'
import { BlockRow } from './block.js'

/** A row of a snapshot page statement: `data` is the JSON text PostgreSQL rendered (see record.ts). */
export interface TextRow {
  id: string
  data: string
  updated_at: string | null
}

/** Where the rows of an entry start: the cursor of the page they continue. */
export interface AheadCursor {
  checkpoint: number
  table_idx: number
  after_id: string
}

/** Rows of one table, in keyset order, and whether the table ends with them. */
export interface RowChunk {
  rows: TextRow[]
  /** True when the table has no rows after the last of `rows` (the read returned fewer rows than it asked for). */
  exhausted: boolean
  /**
   * True when a bounded background read stopped at its row limit short of its bound: rows between its last row and
   * the bound were not read, so the read that starts at the bound cannot follow it. (Bound and rows come from one
   * snapshot, where the range holds at most as many live rows as the read asks for: a guard, not an expected case.)
   */
  cut?: boolean
}

/** A read of a table's next rows under way in the background (`snapshot/ahead.ts`). */
export interface BackgroundRead {
  /**
   * The id its rows end at, at the latest — where the read after it starts; null when the table ends within its
   * rows, undefined when it failed.
   */
  bound: Promise<string | null | undefined>
  /** Its rows (undefined when it failed). */
  chunk: Promise<RowChunk | undefined>
}

/** Rows read ahead of one client's snapshot cursor (see `ReadAheadCache`). */
export interface AheadRows extends RowChunk {
  /** The contract they were rendered under: served only while it is still the current one. */
  contract: SchemaContract
  /** `rows[from]` is the first row after the cursor (rows before it were served already). */
  from: number
  /** Estimated bytes a row holds (text at 2 bytes a character plus object overhead). */
  rowBytes: number
  /** The table's next rows after the last of `rows`, being read in the background. */
  pending?: BackgroundRead
  /** The rows after those of `pending`, read at the same time on another connection (from `pending`'s bound). */
  further?: BackgroundRead
}

interface Entry extends AheadRows {
  cursor: string
  bytes: number
  expires: number
}

export interface ReadAheadOptions {
  /** Rows read beyond a page's own rows by its statement (0: no read-ahead). */
  rows: number
  /** Cap on the text held by all entries together (UTF-16 bytes, approximated). */
  maxBytes: number
  /** An entry not taken within this time is dropped. */
  ttlMs: number
  /** Two background reads at once per client (each on its own connection), or one after another. */
  parallel: boolean
}

/** Defaults of `EngineOptions.snapshotReadAhead`. */
export const DEFAULT_READ_AHEAD: ReadAheadOptions = {
  rows: 9_000,
  maxBytes: 64 * 1024 * 1024,
  ttlMs: 30_000,
  parallel: true,
}

/** Per-row overhead counted on top of a row's text (object, array slot, string headers). */
const ROW_OVERHEAD = 96

/**
 * Snapshot rows read ahead of the page that asked for them, held for the next page of the *same* user, client and
 * cursor. At most one entry per (user, client): a client pages sequentially, so the entry a page leaves is the one
 * its next page takes. An entry is taken (removed) by a lookup whatever the outcome, expires after `ttlMs`, and
 * the oldest entries are dropped when the total would exceed `maxBytes`. No timers: expiry is applied on access.
 */
export class ReadAheadCache {
  readonly #entries = new Map<string, Entry>()
  #bytes = 0

  constructor(
    readonly options: ReadAheadOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes held now (expired entries included until the next access drops them). */
  get bytes(): number {
    return this.#bytes
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size
  }

  /**
   * How many rows a page should read beyond its own: the configured amount while less than half the cap is in
   * use, otherwise none (under memory pressure pages fall back to reading only their own rows).
   */
  aheadRows(): number {
    this.#sweep()
    return this.#bytes * 2 < this.options.maxBytes ? this.options.rows : 0
  }

  /**
   * Whether a client may have a second read under way (`parallel`): while less than a quarter of the cap is in use,
   * so that under memory pressure clients first fall back to one read at a time, then to none.
   */
  secondRead(): boolean {
    return this.options.parallel && this.#bytes * 4 < this.options.maxBytes
  }

  /**
   * Whether an entry with `left` rows of `rowBytes` each, and `reads` reads under way, is small enough to be held:
   * each read reserves room for the configured amount of rows.
   */
  fits(left: number, reads: number, rowBytes: number): boolean {
    return this.#entryBytes(left, reads, rowBytes) <= this.options.maxBytes
  }

  /** Bytes an entry reserves: its `left` rows and, for each read under way, the configured amount of rows. */
  #entryBytes(left: number, reads: number, rowBytes: number): number {
    return (left + reads * this.options.rows) * rowBytes
  }

  /** The entry of `user`'s `client` when it continues exactly `cursor` (removed in any case). */
  take(user: string, client: string, cursor: AheadCursor): AheadRows | undefined {
    const key = slot(user, client)
    const e = this.#entries.get(key)
    if (!e) return undefined
    this.#drop(key, e)
    if (e.expires <= this.now() || e.cursor !== cursorKey(cursor)) return undefined
    const { cursor: _c, bytes: _b, expires: _e, ...rows } = e
    return rows
  }

  /** Holds `rows` for the page of `user`'s `client` that continues at `cursor` (replacing that client's entry). */
  put(user: string, client: string, cursor: AheadCursor, rows: AheadRows): void {
    const key = slot(user, client)
    const old = this.#entries.get(key)
    if (old) this.#drop(key, old)
    const left = rows.rows.length - rows.from
    if ((left === 0 && !rows.pending) || this.options.ttlMs <= 0) return
    // Reads under way will bring up to `options.rows` more rows each: their room is reserved now.
    const reading = (rows.pending ? 1 : 0) + (rows.further ? 1 : 0)
    const bytes = this.#entryBytes(left, reading, rows.rowBytes)
    if (bytes > this.options.maxBytes) return
    this.#sweep()
    for (const [k, e] of this.#entries) {
      if (this.#bytes + bytes <= this.options.maxBytes) break
      this.#drop(k, e) // oldest first (Map order is insertion order)
    }
    this.#entries.set(key, { ...rows, cursor: cursorKey(cursor), bytes, expires: this.now() + this.options.ttlMs })
    this.#bytes += bytes
  }

  #drop(key: string, e: Entry): void {
    this.#entries.delete(key)
    this.#bytes -= e.bytes
  }

  #sweep(): void {
    const now = this.now()
    for (const [k, e] of this.#entries) if (e.expires <= now) this.#drop(k, e)
  }
}

/** The slot of one user's client (user ids and client ids may contain any character: JSON keeps them apart). */
function slot(user: string, client: string): string {
  return JSON.stringify([user, client])
}

function cursorKey(c: AheadCursor): string {
  return JSON.stringify([c.checkpoint, c.table_idx, c.after_id])
}

/**
 * Average bytes a row of `rows` holds: its text at 2 bytes a character plus `ROW_OVERHEAD` — for converted rows (all
 * of one block, as a read returns them), the block's buffers (records, offsets, flags).
 */
export function rowBytesOf(rows: readonly TextRow[]): number {
  const first = rows[0]
  if (first instanceof BlockRow) {
    const { bytes, offsets, deep, count } = first.block
    return Math.ceil((bytes.buffer.byteLength + offsets.byteLength + deep.byteLength) / count) + ROW_OVERHEAD
  }
  let chars = 0
  for (const r of rows) chars += r.id.length + r.data.length + (r.updated_at?.length ?? 0)
  return rows.length === 0 ? ROW_OVERHEAD : Math.ceil((chars * 2) / rows.length) + ROW_OVERHEAD
}
