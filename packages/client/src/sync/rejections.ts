/**
 * Rejections: writes the server will not apply. Each one is recorded durably (`_synchro_rejections`), the local row
 * is reconciled to the server's state, and the app is told (`onRejected`, `rejections()`). Nothing is dropped
 * silently: a write ends on the server or here.
 */
import { JsonDecimal, type SyncRecord } from '@synchro/protocol'
import type { SqliteExecutor } from '../driver.js'
import type { SyncedTable } from '../schema/synced-table.js'
import { setMeta } from '../store/database.js'
import { quoteIdent } from '../store/sql.js'
import { upsertServerRecord } from './apply.js'

export type WriteOperation = 'create' | 'update' | 'delete'

/**
 * `rejected_terminal`: the server refused the write for good (`reasonCode` says why: `invalid_data`, `forbidden`,
 * `table_read_only`, `record_not_found`, …). `conflict`: the server kept its own version. `quarantined`: the server
 * answered `rejected_retryable` on every one of `maxPushAttempts` pushes.
 */
export type RejectionStatus = 'rejected_terminal' | 'conflict' | 'quarantined'

/**
 * What happened to the local row: `server_version` — replaced by the server's copy from the answer; `removed` — the
 * server has no copy this user can see, so the local row was deleted; `refetch` — the server has a copy the answer
 * did not carry, so the local data is downloaded again (snapshot; queued changes are kept); `kept` — the app wrote
 * the record again while the push was in flight, and that newer write is pushed next (after a conflict, the columns
 * it did not write take the server's values first: see the push module), or (`column_dropped`) the values of columns
 * the server no longer has stay in the local row (unsynced-columns.ts).
 */
export type RejectionResolution = 'server_version' | 'removed' | 'refetch' | 'kept'

export interface Rejection {
  /** Local id, for `clearRejections([id])`. */
  id: number
  table: string
  recordID: string
  operation: WriteOperation
  status: RejectionStatus
  /** The server's `reason_code` (or the status when the server sent none). */
  reasonCode: string
  message: string
  resolution: RejectionResolution
  /** The server's row when the answer carried it. */
  serverData: { [column: string]: unknown } | null
  /** The row as pushed (wire form); null for deletes. */
  clientData: { [column: string]: unknown } | null
  /** ISO time at which the client recorded the rejection. */
  rejectedAt: string
}

/** What the push path knows about a rejected change. */
export interface RejectedChange {
  tableName: string
  /** Null when the table is no longer synced: its rows are local data now and stay as they are. */
  table: SyncedTable | null
  recordID: string
  operation: WriteOperation
  /** Set when the server answered `create` before (the answer may have been lost): the server may hold the row. */
  attempted: boolean
  writeSeq: number
  clientData: { [column: string]: unknown } | null
  /** False when the app wrote the record again during the request (its queue entry was kept). */
  dequeued: boolean
}

/** The parts of a push result a rejection keeps (also built locally for changes that cannot be pushed). */
export interface ServerAnswer {
  status: string
  reason_code?: string | undefined
  message?: string | undefined
  server_version?: SyncRecord | undefined
}

interface RejectionRow {
  id: number
  table_name: string
  record_id: string
  operation: WriteOperation
  status: RejectionStatus
  reason_code: string
  message: string
  resolution: RejectionResolution
  server_data: string | null
  client_data: string | null
  rejected_at: string
}

/**
 * Plain JSON for a row in wire form, whose exact numbers (int64 beyond 2^53 as bigint, numerics and jsonb numbers
 * beyond a double as JsonDecimal) become their exact decimal text: the stored rejection, and what `rejections()`
 * returns, stay plain JSON without rounding anything. A JsonDecimal must be converted before `JSON.stringify` sees
 * it (its `toJSON` throws rather than round, and runs before any replacer): a throw here would fail the whole push
 * transaction, and every later cycle would push the same change into the same throw.
 */
function toJson(v: unknown): string | null {
  if (v == null) return null
  return JSON.stringify(exactAsText(v))
}

function exactAsText(v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof JsonDecimal) return v.text
  if (Array.isArray(v)) return v.map(exactAsText)
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, exactAsText(x)]))
  }
  return v
}

function fromRow(r: RejectionRow): Rejection {
  return {
    id: r.id,
    table: r.table_name,
    recordID: r.record_id,
    operation: r.operation,
    status: r.status,
    reasonCode: r.reason_code,
    message: r.message,
    resolution: r.resolution,
    serverData: r.server_data === null ? null : (JSON.parse(r.server_data) as Rejection['serverData']),
    clientData: r.client_data === null ? null : (JSON.parse(r.client_data) as Rejection['clientData']),
    rejectedAt: r.rejected_at,
  }
}

/**
 * Reconciles the local row with the server after a rejection and records it (inside the push transaction, sync
 * lock held). With the server's row in the answer the row becomes that copy. Without it: a create the server has
 * certainly never applied, and any `record_not_found`, mean the server has no copy this user can see — the row is
 * deleted locally; anything else (a read-only table, a forbidden update, invalid data in an update) means a copy
 * exists that we do not have — the next cycle re-downloads the data (snapshot rebuild, queued changes kept).
 */
export async function recordRejection(
  tx: SqliteExecutor,
  c: RejectedChange,
  result: ServerAnswer,
  status: RejectionStatus,
): Promise<Rejection> {
  const t = c.table
  const sv = result.server_version ?? null
  let resolution: RejectionResolution
  if (!c.dequeued || !t) resolution = 'kept'
  else if (sv) {
    await upsertServerRecord(tx, t, sv.table_name === t.name ? sv : { ...sv, table_name: t.name })
    resolution = 'server_version'
  } else if ((c.operation === 'create' && !c.attempted) || result.reason_code === 'record_not_found') {
    await tx.run(`DELETE FROM ${quoteIdent(t.name)} WHERE CAST(${quoteIdent(t.pk)} AS TEXT) = ?`, [c.recordID])
    resolution = 'removed'
  } else {
    await setMeta(tx, 'snapshot_complete', '0')
    resolution = 'refetch'
  }
  return insertRejection(tx, {
    table: c.tableName,
    recordID: c.recordID,
    operation: c.operation,
    status,
    reasonCode: result.reason_code ?? (status === 'quarantined' ? 'retryable' : result.status),
    message: result.message ?? defaultMessage(status),
    resolution,
    serverData: sv?.data ?? null,
    clientData: c.clientData,
    writeSeq: c.writeSeq,
  })
}

/** Stores a rejection (`writeSeq`: the write counter of the queue entry it is about). */
export async function insertRejection(
  tx: SqliteExecutor,
  r: Omit<Rejection, 'id' | 'rejectedAt'> & { writeSeq: number },
): Promise<Rejection> {
  const rows = await tx.all<RejectionRow>(
    `INSERT INTO _synchro_rejections
       (table_name, record_id, operation, status, reason_code, message, resolution, server_data, client_data,
        write_seq, rejected_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
     RETURNING id, table_name, record_id, operation, status, reason_code, message, resolution, server_data,
       client_data, rejected_at`,
    [
      r.table,
      r.recordID,
      r.operation,
      r.status,
      r.reasonCode,
      r.message,
      r.resolution,
      toJson(r.serverData),
      toJson(r.clientData),
      r.writeSeq,
    ],
  )
  return fromRow(rows[0]!)
}

function defaultMessage(status: RejectionStatus): string {
  if (status === 'conflict') return 'the server kept its version'
  if (status === 'quarantined') return 'the server kept failing to apply this write'
  return 'rejected by the server'
}

/** A later write of the record was applied: its older rejections no longer fail `confirmed()`. */
export async function supersedeRejections(
  tx: SqliteExecutor,
  table: string,
  recordID: string,
  writeSeq: number,
): Promise<void> {
  await tx.run(
    `UPDATE _synchro_rejections SET superseded = 1
     WHERE table_name = ? AND record_id = ? AND write_seq <= ? AND superseded = 0`,
    [table, recordID, writeSeq],
  )
}

export async function listRejections(ex: SqliteExecutor): Promise<Rejection[]> {
  return (await ex.all<RejectionRow>('SELECT * FROM _synchro_rejections ORDER BY id')).map(fromRow)
}

/** The newest rejection of a record that no later applied write superseded. */
export async function currentRejection(ex: SqliteExecutor, table: string, recordID: string): Promise<Rejection | null> {
  const rows = await ex.all<RejectionRow>(
    `SELECT * FROM _synchro_rejections WHERE table_name = ? AND record_id = ? AND superseded = 0
     ORDER BY id DESC LIMIT 1`,
    [table, recordID],
  )
  return rows[0] ? fromRow(rows[0]) : null
}

/** Deletes the given rejections (all when `ids` is omitted); returns how many were deleted. */
export async function deleteRejections(ex: SqliteExecutor, ids?: readonly number[]): Promise<number> {
  if (ids === undefined) return (await ex.run('DELETE FROM _synchro_rejections')).changes
  let n = 0
  for (const id of ids) n += (await ex.run('DELETE FROM _synchro_rejections WHERE id = ?', [id])).changes
  return n
}

export const REJECTIONS_TABLE = '_synchro_rejections'

/**
 * Listeners for new rejections (changes of the list are observed on the table itself, so they reach every tab).
 * Without an `onRejected` listener each reason code is logged once, so a rejection is never silent even in an app
 * that ignores them.
 */
export class RejectionEvents {
  readonly rejectedListeners = new Set<(r: Rejection) => void>()
  private readonly warned = new Set<string>()

  constructor(private readonly warn: (message: string) => void = (m) => console.warn(m)) {}

  emitRejected(list: readonly Rejection[]): void {
    if (list.length === 0) return
    for (const r of list) {
      if (this.rejectedListeners.size === 0) {
        if (!this.warned.has(r.reasonCode)) {
          this.warned.add(r.reasonCode)
          this.warn(
            `[synchro] ${r.operation} of ${r.table} ${r.recordID} was ${r.status} (${r.reasonCode}: ${r.message}); ` +
              'listen with client.onRejected() and read client.rejections() (logged once per reason)',
          )
        }
        continue
      }
      for (const l of [...this.rejectedListeners]) safely(() => l(r))
    }
  }
}

function safely(fn: () => void): void {
  try {
    fn()
  } catch {
    // A listener's failure must not break sync.
  }
}
