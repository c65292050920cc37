import type { BackfillChunk } from '../buckets/backfill.js'
import type { TextRow } from '../buckets/resolver.js'
import type { ResolvedTable } from '../registry/registry.js'

/** One decoded row change of a registered table. */
export interface RowChange {
  kind: 'insert' | 'update' | 'delete'
  table: ResolvedTable
  /** The record id as text. */
  id: string
  /** New row for insert/update, old row for delete. */
  row: TextRow
  /** Old row of an update (full with REPLICA IDENTITY FULL; key only otherwise), null when not sent. */
  oldRow: TextRow | null
  /** json/jsonb columns (for bucket functions). */
  jsonColumns: ReadonlySet<string>
  /** Columns sent as "unchanged TOAST" that the old row could not fill: re-read from the table before use. */
  missing?: string[]
}

export interface TruncateChange {
  kind: 'truncate'
  tables: ResolvedTable[]
}

export type Change = RowChange | TruncateChange

/** A committed source transaction: its changes and its commit end LSN. */
export interface WalTransaction {
  endLsn: bigint
  changes: Change[]
  /** Source transaction id (32-bit, from Begin): used to wait until its rows are visible to our snapshots. */
  xid?: number
  /** Commit time from Begin (microseconds since 2000-01-01 UTC): how far behind capture runs. */
  commitTime?: bigint
  /**
   * A transaction too big to hold in memory: `changes` is empty and its changes are read from here, in parts.
   * Written in parts inside one database transaction (visible at once, or not at all).
   */
  spill?: SpilledChanges
  /**
   * Not a source transaction: edges for rows the capture never saw written (a backfill chunk), to be applied at this
   * place in the stream. No changes, `endLsn` 0; never skipped as already applied, never prepared ahead.
   */
  backfill?: BackfillChunk
}

/** The changes of one big transaction, kept outside the heap (a file) until they are written. */
export interface SpilledChanges {
  /** Number of row changes and truncates. */
  readonly size: number
  /** Received from the server while in progress (protocol 2 streaming), not whole at its commit. */
  readonly streamed: boolean
  /** The changes in WAL order, in parts of at most `max`. */
  parts(max: number): Iterable<Change[]>
  /** Frees the storage; called once the transaction is written or abandoned. */
  dispose(): void
}
