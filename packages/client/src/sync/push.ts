/**
 * Push: reading a batch from the queue (PROTOCOL.md §4.3 step 3) and applying the server's results.
 */
import { type PushRecord, type PushResponse, type PushResult, stringifyJsonLossless } from '@synchro/protocol'
import { type Row, runMany, type SqliteExecutor } from '../driver.js'
import type { RejectedPush } from '../errors.js'
import type { SyncedTable } from '../schema/synced-table.js'
import { quoteIdent, quoteLiteral } from '../store/sql.js'
import { isRfc3339, toRfc3339 } from '../timestamps.js'
import { upsertServerRecord, writeServerStamps } from './apply.js'
import type { Settled } from './confirm.js'
import { mergeServerVersion, ownEarlierWrite } from './own-write.js'
import {
  type Rejection,
  type RejectionStatus,
  recordRejection,
  type ServerAnswer,
  supersedeRejections,
} from './rejections.js'
import { readUnreceived } from './unreceived.js'
import { readUnsyncedWrites, recordUnsyncedWrite, type UnsyncedValues } from './unsynced-columns.js'
import { readColumnSql, sqliteToWire } from './values.js'

export type Operation = 'create' | 'update' | 'delete'

export interface QueueEntry {
  record_id: string
  table_name: string
  operation: Operation
  base_updated_at: string | null
  client_updated_at: string
  /**
   * 1 when the entry was part of an earlier push request that was sent (its answer may have been lost, so it may have
   * been applied); 0 when the server has certainly never seen it. The value as read, before this push marks it.
   */
  attempted: number
  /** The data the last push request that carried the entry sent (JSON), as read before this push replaces it. */
  attempted_data: string | null
  /** The durable counter of the entry's latest write (see confirm.ts). */
  write_seq: number
  /** `rejected_retryable` answers so far (reset by a new local write). */
  retry_count: number
  /** The columns the entry's writes set; null when not known (schema/written-columns.ts). */
  written_columns: string | null
}

export interface SentChange {
  entry: QueueEntry
  /** The local row as pushed (wire form), for conflict events (Decision 24). Null for deletes of missing rows. */
  clientData: { [column: string]: unknown } | null
  /** Values written to columns the server no longer has: not pushed, reported once answered (unsynced-columns.ts). */
  unsynced?: UnsyncedValues | undefined
}

export interface PushBatch {
  changes: PushRecord[]
  sent: SentChange[]
  /** Entries that can never be pushed (table no longer synced, row gone): removed from the queue. */
  dropped: QueueEntry[]
}

/**
 * Table ranks for push order: parents and dependencies before dependants, so a child created in the same
 * millisecond as its parent (or before the parent's last update) never reaches the server first.
 */
export function tableRanks(tables: ReadonlyMap<string, SyncedTable>): Map<string, number> {
  const ranks = new Map<string, number>()
  const visiting = new Set<string>()
  const rank = (name: string): number => {
    const known = ranks.get(name)
    if (known !== undefined) return known
    const t = tables.get(name)
    if (!t || visiting.has(name)) return 0
    visiting.add(name)
    const deps = [...(t.source.dependencies ?? []), ...(t.source.parent_table ? [t.source.parent_table] : [])]
    const r = deps.length === 0 ? 0 : 1 + Math.max(...deps.map(rank))
    visiting.delete(name)
    ranks.set(name, r)
    return r
  }
  for (const name of tables.keys()) rank(name)
  return ranks
}

function normaliseTimestamp(ts: string | null): string | null {
  if (ts === null) return null
  const t = toRfc3339(ts)
  // The server rejects the whole request (400) on a malformed timestamp; a bad base only loses its optimisation.
  return isRfc3339(t) ? t : null
}

export function queueKey(table: string, id: string): string {
  return `${table}\u0000${id}`
}

/**
 * Reads up to `limit` queued changes with their rows, in push order, leaving out the `skip` keys and the entries
 * waiting for a retry after `now` (ms since the epoch).
 */
export async function readPushBatch(
  ex: SqliteExecutor,
  tables: ReadonlyMap<string, SyncedTable>,
  limit: number,
  skip: ReadonlySet<string> = new Set(),
  now = Date.now(),
): Promise<PushBatch> {
  const ranks = tableRanks(tables)
  const rankCase =
    ranks.size === 0
      ? '0'
      : `CASE table_name ${[...ranks].map(([n, r]) => `WHEN ${quoteLiteral(n)} THEN ${r}`).join(' ')} ELSE 0 END`
  const entries = await ex
    .all<QueueEntry>(
      `SELECT record_id, table_name, operation, base_updated_at, client_updated_at, attempted, attempted_data, write_seq,
       retry_count, written_columns
     FROM _synchro_pending_changes
     WHERE retry_at IS NULL OR retry_at <= ?
     ORDER BY ${rankCase}, client_updated_at, table_name, record_id
     LIMIT ?`,
      [now, limit + skip.size],
    )
    .then((rows) => rows.filter((e) => !skip.has(queueKey(e.table_name, e.record_id))).slice(0, limit))
  const batch: PushBatch = { changes: [], sent: [], dropped: [] }
  const unreceived = await readUnreceived(ex)
  const rowsByTable = new Map<string, Map<string, Row>>()
  const unsynced = new Map<string, UnsyncedValues>()
  for (const [name, ids] of groupIds(entries)) {
    const t = tables.get(name)
    if (!t) continue
    const rows = await ex.all<Row & { __synchro_id: string }>(
      `SELECT CAST(${quoteIdent(t.pk)} AS TEXT) AS __synchro_id, ${t.columns.map(readColumnSql).join(', ')} FROM ${quoteIdent(t.name)} WHERE ${quoteIdent(t.pk)} IN (${ids.map(() => '?').join(', ')})`,
      ids,
    )
    rowsByTable.set(name, new Map(rows.map((r) => [r.__synchro_id, r])))
    for (const [id, values] of await readUnsyncedWrites(ex, t, entries)) unsynced.set(queueKey(name, id), values)
  }
  for (const e of entries) {
    const t = tables.get(e.table_name)
    const row = rowsByTable.get(e.table_name)?.get(e.record_id)
    if (!t || (!row && e.operation !== 'delete')) {
      batch.dropped.push(e)
      continue
    }
    let data: { [column: string]: unknown } | null = null
    if (row) {
      data = {}
      const notYet = unreceived.get(t.name)
      for (const c of t.columns) {
        // A column added on the server whose value has not arrived yet: left out, the server keeps its own. So is a
        // NULL the server can never store (NOT NULL with a default): the column was added later as nullable, SQLite
        // refusing its default (`NOT NULL DEFAULT now()`), and an app unaware of it writes rows without it; pushed,
        // that NULL is a constraint_violation, left out a create gets the server's default (a database created with
        // the column filled it from its local default) and an update keeps the server's value.
        if (row[c.name] === null && (notYet?.has(c.name) || (!c.nullable && c.default_kind !== 'none'))) continue
        data[c.name] = sqliteToWire(c, row[c.name])
      }
    }
    const rec: PushRecord = {
      id: e.record_id,
      table_name: e.table_name,
      operation: e.operation,
      data: e.operation === 'delete' ? null : data,
      client_updated_at: normaliseTimestamp(e.client_updated_at) ?? undefined,
      base_updated_at: normaliseTimestamp(e.base_updated_at) ?? undefined,
    }
    batch.changes.push(rec)
    batch.sent.push({ entry: e, clientData: data, unsynced: unsynced.get(queueKey(e.table_name, e.record_id)) })
  }
  return batch
}

/** When the earliest record waiting for a retry is due (ms since the epoch), or null. */
export async function nextRetryAt(ex: SqliteExecutor): Promise<number | null> {
  const rows = await ex.all<{ at: number | null }>('SELECT min(retry_at) AS at FROM _synchro_pending_changes')
  return rows[0]?.at == null ? null : Number(rows[0].at)
}

/**
 * Marks the entries of a batch as attempted and keeps the data each is sent with (`attempted_data`, see
 * `ownEarlierWrite`). Must run before the request is sent (in the same transaction as the read, so no local write
 * slips in between): once sent, a request whose answer is lost may still have been applied.
 */
export async function markAttempted(ex: SqliteExecutor, sent: readonly SentChange[]): Promise<void> {
  await runMany(
    ex,
    'UPDATE _synchro_pending_changes SET attempted = 1, attempted_data = ? WHERE table_name = ? AND record_id = ?',
    sent.map((s) => [
      s.entry.operation === 'delete' || s.clientData === null ? null : stringifyJsonLossless(s.clientData),
      s.entry.table_name,
      s.entry.record_id,
    ]),
  )
}

function groupIds(entries: readonly QueueEntry[]): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const e of entries) {
    let l = out.get(e.table_name)
    if (!l) {
      l = []
      out.set(e.table_name, l)
    }
    l.push(e.record_id)
  }
  return out
}

export interface ConflictInfo {
  table: string
  recordID: string
  clientData: { [column: string]: unknown } | null
  serverData: { [column: string]: unknown } | null
}

export interface PushOutcome {
  applied: number
  /** Creates found already applied (`record_exists` after an earlier attempt): re-queued as updates, to push again. */
  requeued: number
  conflicts: ConflictInfo[]
  terminal: RejectedPush[]
  /** Answered `rejected_retryable` and waiting for their next attempt (quarantined ones are in `rejections`). */
  retryable: RejectedPush[]
  /** Recorded in `_synchro_rejections` by this batch. */
  rejections: Rejection[]
  /** Answered entries, for confirmation waiters. */
  settled: Settled[]
}

export interface PushOptions {
  /** Current time, ms since the epoch (retry schedule). */
  now: number
  /** `rejected_retryable` answers before a record is quarantined. */
  maxAttempts: number
}

/** Delay before the next push of a record after its `attempt`-th retryable answer: 1, 2, 4 … s, capped at 60 s. */
export function recordRetryDelayMs(attempt: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, attempt - 1))
}

/** Removes an entry only if nobody changed it since it was read (a write during the request must not be lost). */
async function removeIfUnchanged(tx: SqliteExecutor, e: QueueEntry): Promise<boolean> {
  const r = await tx.run(
    `DELETE FROM _synchro_pending_changes
     WHERE table_name = ? AND record_id = ? AND operation = ? AND client_updated_at = ? AND write_seq = ?`,
    [e.table_name, e.record_id, e.operation, e.client_updated_at, e.write_seq],
  )
  return r.changes > 0
}

/**
 * Applies a push response inside a sync-locked transaction: accepted → dequeue and write the server stamps;
 * conflict/terminal → dequeue, reconcile the local row and record the rejection (rejections.ts); retryable → keep
 * and retry later with backoff, quarantined as a rejection after `maxAttempts` answers; `record_exists` for a create
 * that was attempted before → our create landed: keep the local row and re-queue the entry as an update.
 */
export async function applyPushResults(
  tx: SqliteExecutor,
  tables: ReadonlyMap<string, SyncedTable>,
  batch: PushBatch,
  res: PushResponse,
  opts: PushOptions = { now: Date.now(), maxAttempts: 8 },
): Promise<PushOutcome> {
  const outcome: PushOutcome = {
    applied: 0,
    requeued: 0,
    conflicts: [],
    terminal: [],
    retryable: [],
    rejections: [],
    settled: [],
  }
  const reject = async (s: SentChange, t: SyncedTable | null, r: ServerAnswer, status: RejectionStatus) => {
    const e = s.entry
    const dequeued = await removeIfUnchanged(tx, e)
    if (!dequeued && r.server_version) {
      // The app wrote again meanwhile: keep that newer write, judged against the server's current version.
      await tx.run('UPDATE _synchro_pending_changes SET base_updated_at = ? WHERE table_name = ? AND record_id = ?', [
        r.server_version.updated_at,
        e.table_name,
        e.record_id,
      ])
      if (t) await mergeServerVersion(tx, t, s, r.server_version)
    }
    const rejection = await recordRejection(
      tx,
      {
        tableName: e.table_name,
        table: t,
        recordID: e.record_id,
        operation: e.operation,
        attempted: e.attempted === 1,
        writeSeq: e.write_seq,
        clientData: s.clientData,
        dequeued,
      },
      r,
      status,
    )
    outcome.rejections.push(rejection)
    if (dequeued && s.unsynced) outcome.rejections.push(await recordUnsyncedWrite(tx, e, s.unsynced))
    outcome.settled.push({ table: e.table_name, recordID: e.record_id, writeSeq: e.write_seq, rejection })
  }
  for (const e of batch.dropped) {
    // The row or its table is gone locally: it can never be pushed, and the app learns so.
    if (!(await removeIfUnchanged(tx, e))) continue
    await reject({ entry: e, clientData: null }, tables.get(e.table_name) ?? null, droppedResult(), 'rejected_terminal')
  }
  const sent = new Map(batch.sent.map((s) => [queueKey(s.entry.table_name, s.entry.record_id), s]))
  const results: PushResult[] = [...(res.accepted ?? []), ...(res.rejected ?? [])]
  for (const r of results) {
    const s = sent.get(queueKey(r.table_name, r.id))
    const t = tables.get(r.table_name)
    if (!s || !t) continue
    const e = s.entry
    const own = ownEarlierWrite(t, s, r)
    switch (own === 'applied' ? 'applied' : r.status) {
      case 'applied': {
        outcome.applied++
        // A conflict with our own earlier write (see ownEarlierWrite) carries the server's stamp in its row.
        const serverUpdatedAt = own === 'applied' ? r.server_version?.updated_at : r.server_updated_at
        const removed = await removeIfUnchanged(tx, e)
        if (!removed) await rebaseChangedEntry(tx, t, e, serverUpdatedAt)
        // The server set columns we did not (defaults, triggers, generated columns): store its row at once, unless
        // the app wrote the row again meanwhile (that newer write stays; the next pull brings the server's columns).
        // Keyed by the local id as the app wrote it (the server renders ids canonically, e.g. lower-case uuids).
        const sv = r.server_version
        if (removed && sv && e.operation !== 'delete') {
          const local =
            sv.id === e.record_id ? sv : { ...sv, id: e.record_id, data: { ...sv.data, [t.pk]: e.record_id } }
          await upsertServerRecord(tx, t, { ...local, table_name: t.name })
        } else {
          // A delete undone meanwhile: the server's deleted_at would delete the restored row again (nothing queued).
          await writeServerStamps(tx, t, r.id, serverUpdatedAt, removed ? r.server_deleted_at : undefined)
        }
        await supersedeRejections(tx, e.table_name, e.record_id, e.write_seq)
        // Applied without the values of columns the server no longer has: reported now (still queued: later).
        const lost = removed && s.unsynced ? await recordUnsyncedWrite(tx, e, s.unsynced) : null
        if (lost) outcome.rejections.push(lost)
        outcome.settled.push({ table: e.table_name, recordID: e.record_id, writeSeq: e.write_seq, rejection: lost })
        break
      }
      case 'rejected_retryable': {
        const attempts = e.retry_count + 1
        if (attempts >= opts.maxAttempts) {
          await reject(s, t, r, 'quarantined')
          break
        }
        outcome.retryable.push(rejected(r))
        // Only if unchanged: a write made during the request reset the entry's attempts and is pushed at once.
        await tx.run(
          `UPDATE _synchro_pending_changes SET retry_count = ?, retry_at = ?
           WHERE table_name = ? AND record_id = ? AND write_seq = ?`,
          [attempts, opts.now + recordRetryDelayMs(attempts), e.table_name, e.record_id, e.write_seq],
        )
        break
      }
      default: {
        const ownLanded = (e.operation === 'create' && e.attempted && isRecordExists(r)) || own === 'requeue'
        // An undelete is queued as a create (triggers.ts §), but another device may have restored the row before
        // this one pulled that: the create meets a live row. It is an update of that row made from the tombstone's
        // stamp, as it was queued before: pushed as one, LWW decides, instead of a false record_exists conflict.
        const restoredElsewhere =
          e.operation === 'create' && !e.attempted && e.base_updated_at !== null && isRecordExists(r)
        if (ownLanded || restoredElsewhere) {
          // Our own earlier create (or update, see ownEarlierWrite) landed and its answer was lost: the server's copy
          // is that write, older than the local row. Keep the local row and push it as an update based on the
          // server's stamp (LWW applies a base equal to the server's updated_at whatever the clocks say). One
          // conversion per entry: it is no longer a create. A delete queued meanwhile stays a delete.
          outcome.requeued++
          await tx.run(
            `UPDATE _synchro_pending_changes
             SET operation = CASE WHEN operation = 'create' THEN 'update' ELSE operation END,
                 base_updated_at = COALESCE(?, base_updated_at)
             WHERE table_name = ? AND record_id = ?`,
            [ownLanded ? normaliseTimestamp(r.server_version?.updated_at ?? null) : null, e.table_name, e.record_id],
          )
          break
        }
        // conflict and rejected_terminal: the server's word is final for this change.
        await reject(s, t, r, r.status === 'conflict' ? 'conflict' : 'rejected_terminal')
        if (r.status === 'conflict') {
          outcome.conflicts.push({
            table: r.table_name,
            recordID: r.id,
            clientData: s.clientData,
            serverData: r.server_version?.data ?? null,
          })
        } else outcome.terminal.push(rejected(r))
        break
      }
    }
  }
  return outcome
}

function droppedResult(): ServerAnswer {
  return {
    status: 'rejected_terminal',
    reason_code: 'not_pushable',
    message: 'the local row is gone; the change cannot be pushed',
  }
}

/** `conflict`/`record_exists` (a live row with that id). Servers that omit `reason_code` still send the message. */
function isRecordExists(r: PushResult): boolean {
  if (r.status !== 'conflict') return false
  if (r.reason_code != null) return r.reason_code === 'record_exists'
  return r.message === 'record already exists'
}

function rejected(r: PushResult): RejectedPush {
  return { recordID: r.id, table: r.table_name, status: r.status, ...(r.message ? { message: r.message } : {}) }
}

/**
 * An accepted change whose queue entry was rewritten during the request: the server now has the record, so a queued
 * `create` becomes an `update` based on the new server stamp — unless what was applied is a delete: the record is
 * now deleted on the server and only a `create` (a resurrection) brings the undeleted row back. If the entry vanished
 * because a queued create was followed by a local delete, the server's copy must still be deleted: queue that delete.
 */
async function rebaseChangedEntry(
  tx: SqliteExecutor,
  t: SyncedTable,
  e: QueueEntry,
  serverUpdatedAt: string | undefined,
): Promise<void> {
  const upd = await tx.run(
    `UPDATE _synchro_pending_changes
     SET operation = CASE WHEN operation = 'create' AND ? <> 'delete' THEN 'update' ELSE operation END,
         base_updated_at = COALESCE(?, base_updated_at)
     WHERE table_name = ? AND record_id = ?`,
    [e.operation, serverUpdatedAt ?? null, e.table_name, e.record_id],
  )
  if (upd.changes > 0 || e.operation !== 'create') return
  const rows = await tx.all<{ d: unknown }>(
    `SELECT ${quoteIdent(t.deletedAt)} AS d FROM ${quoteIdent(t.name)} WHERE ${quoteIdent(t.pk)} = ?`,
    [e.record_id],
  )
  if (rows.length > 0 && rows[0]!.d != null) {
    await tx.run(
      `INSERT OR REPLACE INTO _synchro_pending_changes
         (record_id, table_name, operation, base_updated_at, client_updated_at, attempted)
       VALUES (?, ?, 'delete', ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 1)`,
      [e.record_id, e.table_name, serverUpdatedAt ?? null],
    )
  }
}
