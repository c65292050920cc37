/**
 * Writes of columns the server no longer syncs. A column the server drops or renames stays in the local table
 * (migrations drop nothing), and a push sends the row's columns of the current schema only: a value the app wrote
 * to such a column — queued before the client learnt of the change, or written since by code that still uses the
 * column — can never reach the server. The CDC triggers note which columns each queued entry wrote
 * (`written_columns`, see schema/written-columns.ts), so the push tells such a write from the column's old value,
 * which was the server's and is not reported. The rest of the write is pushed as usual; once it is answered
 * (applied, or rejected for its own reason) the values that could not go are a `column_dropped` rejection carrying
 * them, so that the app can redo them (under a renamed column's new name, say). The local row keeps them.
 */
import type { SqliteExecutor } from '../driver.js'
import type { SyncedTable } from '../schema/synced-table.js'
import { parseWritten } from '../schema/written-columns.js'
import { quoteIdent } from '../store/sql.js'
import type { QueueEntry } from './push.js'
import { insertRejection, type Rejection } from './rejections.js'
import { bytesToPgHex } from './values.js'

export type UnsyncedValues = { [column: string]: unknown }

const COLUMN_DROPPED = 'column_dropped'

/**
 * The values the queued `entries` (those of `t`) wrote to local columns the server no longer has, by record id
 * (records without any are left out). An entry that does not know what it wrote counts every such column holding a
 * value. Deletes count nothing: the row is deleted on the server as well.
 */
export async function readUnsyncedWrites(
  ex: SqliteExecutor,
  t: SyncedTable,
  entries: readonly QueueEntry[],
): Promise<Map<string, UnsyncedValues>> {
  const out = new Map<string, UnsyncedValues>()
  const wanted = new Map<string, string[] | null>()
  for (const e of entries) {
    if (e.operation === 'delete' || e.table_name !== t.name) continue
    const written = parseWritten(e.written_columns)
    if (written === null) wanted.set(e.record_id, null)
    else {
      const gone = written.filter((c) => !t.columnNames.has(c))
      if (gone.length > 0) wanted.set(e.record_id, gone)
    }
  }
  if (wanted.size === 0) return out
  const local = await ex.all<{ name: string }>('SELECT name FROM pragma_table_info(?)', [t.name])
  const extra = local.map((c) => c.name).filter((n) => !t.columnNames.has(n))
  if (extra.length === 0) return out
  // int64 values beyond 2^53 read as text (drivers return INTEGER as a double), as pushes do.
  const select = extra.map((c, i) => {
    const q = quoteIdent(c)
    return `CASE typeof(${q}) WHEN 'integer' THEN CAST(${q} AS TEXT) ELSE ${q} END AS "v${i}", typeof(${q}) AS "t${i}"`
  })
  const ids = [...wanted.keys()]
  const rows = await ex.all<{ [k: string]: unknown }>(
    `SELECT CAST(${quoteIdent(t.pk)} AS TEXT) AS __synchro_id, ${select.join(', ')} FROM ${quoteIdent(t.name)}
      WHERE ${quoteIdent(t.pk)} IN (${ids.map(() => '?').join(', ')})`,
    ids,
  )
  for (const row of rows) {
    const id = String(row.__synchro_id)
    const written = wanted.get(id)
    const values: UnsyncedValues = {}
    for (const [i, c] of extra.entries()) {
      const type = row[`t${i}`]
      // Known writes count also when they set NULL (a clear the server never got); unknown ones only values.
      if (written ? !written.includes(c) : type === 'null') continue
      values[c] = plainValue(row[`v${i}`], type)
    }
    if (Object.keys(values).length > 0) out.set(id, values)
  }
  return out
}

/** A local value as plain JSON: integers exact (beyond 2^53 as bigint, stored as text), bytes as `\x…` hex. */
function plainValue(v: unknown, type: unknown): unknown {
  if (type === 'integer' && typeof v === 'string') {
    const n = Number(v)
    return Number.isSafeInteger(n) ? n : BigInt(v)
  }
  if (v instanceof Uint8Array) return bytesToPgHex(v)
  return v
}

/** Records the `column_dropped` rejection of an answered entry (inside the push transaction). */
export function recordUnsyncedWrite(tx: SqliteExecutor, e: QueueEntry, values: UnsyncedValues): Promise<Rejection> {
  const names = Object.keys(values).join(', ')
  return insertRejection(tx, {
    table: e.table_name,
    recordID: e.record_id,
    operation: e.operation,
    status: 'rejected_terminal',
    reasonCode: COLUMN_DROPPED,
    message: `not pushed: the server no longer has ${e.table_name} column(s) ${names} (dropped or renamed)`,
    resolution: 'kept',
    serverData: null,
    clientData: values,
    writeSeq: e.write_seq,
  })
}
