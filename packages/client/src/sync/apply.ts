/**
 * Applying server data to the local database: pull pages, snapshot pages, conflict `server_version`s and the stamps
 * of accepted pushes. Every function runs inside the caller's write transaction with the sync lock held (the CDC
 * triggers must not queue server data as local changes).
 *
 * The hot path (pull/snapshot pages) is one prepared upsert per table run once per row (`runMany`), with value
 * converters precomputed per column and one IN-list query per table and page for the read-your-own-writes check.
 */
import type { DeleteEntry, PullResponse, SyncRecord } from '@synchro/protocol'
import { runMany, type SqliteExecutor, type SqlParam, type SqlValue } from '../driver.js'
import type { SyncedTable } from '../schema/synced-table.js'
import { withCdcTriggersSuspended } from '../schema/triggers.js'
import { getMeta, setMeta } from '../store/database.js'
import { quoteIdent } from '../store/sql.js'
import { compareTimestamps } from '../timestamps.js'
import { fillUnreceived, readUnreceived, type Unreceived } from './unreceived.js'
import { wireToSqlite } from './values.js'

type Converter = (rec: SyncRecord) => SqlValue

interface TablePlan {
  upsertSql: string
  /** The same row insert that leaves an existing row alone (the fast path for pages of new rows). */
  insertNewSql: string
  converters: Converter[]
  stampsSql: (n: number) => string
  softDeleteSql: string
}

const plans = new WeakMap<SyncedTable, TablePlan>()

/** Runs the table's prepared upsert once per record (callers deduplicate ids). */
async function upsertRows(tx: SqliteExecutor, t: SyncedTable, recs: readonly SyncRecord[]): Promise<void> {
  if (recs.length === 0) return
  // Measured: one prepared single-row upsert per record beats multi-row VALUES statements on better-sqlite3.
  await runMany(
    tx,
    planFor(t).upsertSql,
    recs.map((r) => recordParams(t, r)),
  )
}

function planFor(t: SyncedTable): TablePlan {
  let p = plans.get(t)
  if (p) return p
  const cols = t.columns.map((c) => quoteIdent(c.name))
  const pk = quoteIdent(t.pk)
  const updates = t.columns
    .filter((c) => c.name !== t.pk)
    .map((c) => `${quoteIdent(c.name)} = excluded.${quoteIdent(c.name)}`)
  const tuple = `(${cols.map(() => '?').join(', ')})`
  const onConflict =
    updates.length > 0 ? `ON CONFLICT (${pk}) DO UPDATE SET ${updates.join(', ')}` : `ON CONFLICT (${pk}) DO NOTHING`
  const insert = `INSERT INTO ${quoteIdent(t.name)} (${cols.join(', ')}) VALUES`
  const upsertSql = `${insert} ${tuple} ${onConflict}`
  const converters = t.columns.map((c): Converter => {
    const name = c.name
    const type = c.logical_type
    // Keys absent from `data`: the record envelope carries id and timestamps; other columns get NULL (or a default).
    const fallback: Converter =
      name === t.pk
        ? (r) => r.id
        : name === t.updatedAt
          ? (r) => r.updated_at
          : name === t.deletedAt
            ? (r) => r.deleted_at ?? null
            : constantFallback(c.nullable ? undefined : c.sqlite_default_sql)
    return (r) => {
      const v = r.data[name]
      return v === undefined ? fallback(r) : wireToSqlite(type, v)
    }
  })
  const tbl = quoteIdent(t.name)
  p = {
    upsertSql,
    insertNewSql: `${insert} ${tuple} ON CONFLICT (${pk}) DO NOTHING`,
    converters,
    stampsSql: (n) =>
      `SELECT CAST(${pk} AS TEXT) AS id, ${quoteIdent(t.updatedAt)} AS u FROM ${tbl} WHERE ${pk} IN (${'?,'.repeat(n - 1)}?)`,
    softDeleteSql: `UPDATE ${tbl} SET ${quoteIdent(t.deletedAt)} = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE ${pk} = ? AND ${quoteIdent(t.deletedAt)} IS NULL`,
  }
  plans.set(t, p)
  return p
}

/**
 * Value for a key the server left out. A conformant server sends every schema column; if one is missing anyway, a
 * NOT NULL column gets its portable default instead of failing the whole page on the constraint.
 */
function constantFallback(sqliteDefault: string | undefined): Converter {
  if (!sqliteDefault) return () => null
  const d = sqliteDefault.trim()
  if (/^'.*'$/s.test(d)) {
    const v = d.slice(1, -1).replaceAll("''", "'")
    return () => v
  }
  if (/^\(?-?\d+(\.\d+)?\)?$/.test(d)) {
    const v = Number(d.replace(/[()]/g, ''))
    return () => v
  }
  if (/^CURRENT_(TIMESTAMP|DATE|TIME)$/i.test(d)) {
    const kind = d.toUpperCase()
    return () => {
      const iso = new Date().toISOString()
      return kind === 'CURRENT_DATE' ? iso.slice(0, 10) : kind === 'CURRENT_TIME' ? iso.slice(11, 19) : iso
    }
  }
  return () => null
}

/** Row parameters of the upsert for one wire record (all schema columns, in schema order). */
export function recordParams(t: SyncedTable, rec: SyncRecord): SqlValue[] {
  const conv = planFor(t).converters
  const out = new Array<SqlValue>(conv.length)
  for (let i = 0; i < conv.length; i++) out[i] = conv[i]!(rec)
  return out
}

/** Record ids with a queued local change, per table. Such rows are never overwritten by pulled data. */
export async function pendingIds(tx: SqliteExecutor): Promise<Map<string, Set<string>>> {
  const rows = await tx.all<{ t: string; id: string }>(
    'SELECT table_name AS t, record_id AS id FROM _synchro_pending_changes',
  )
  const out = new Map<string, Set<string>>()
  for (const r of rows) {
    let s = out.get(r.t)
    if (!s) {
      s = new Set()
      out.set(r.t, s)
    }
    s.add(r.id)
  }
  return out
}

const IN_CHUNK = 500

async function localStamps(tx: SqliteExecutor, t: SyncedTable, ids: string[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>()
  const plan = planFor(t)
  for (let i = 0; i < ids.length; i += IN_CHUNK) {
    const chunk = ids.slice(i, i + IN_CHUNK)
    const rows = await tx.all<{ id: string; u: unknown }>(plan.stampsSql(chunk.length), chunk)
    for (const r of rows) out.set(r.id, typeof r.u === 'string' ? r.u : r.u == null ? null : String(r.u))
  }
  return out
}

export interface ApplyStats {
  upserted: number
  skipped: number
  deleted: number
}

function groupByTable(records: readonly SyncRecord[]): Map<string, Map<string, SyncRecord>> {
  const out = new Map<string, Map<string, SyncRecord>>()
  for (const r of records) {
    let m = out.get(r.table_name)
    if (!m) {
      m = new Map()
      out.set(r.table_name, m)
    }
    // A later record for the same id wins (pages are deduplicated by the server, but be safe).
    m.delete(r.id)
    m.set(r.id, r)
  }
  return out
}

/**
 * Applies pulled changes and deletes (PROTOCOL.md §4.3 step 4). Upserts skip a record when the row has a queued local
 * change or when the local updated_at is strictly after the record's (read-your-own-writes), compared as instants.
 * A change whose record carries `deleted_at` is stored as a soft-deleted row. Deletes are soft: deleted_at = now
 * where still NULL, and skip rows with a queued local change too. Records of unknown tables are ignored.
 */
export async function applyPullPage(
  tx: SqliteExecutor,
  tables: ReadonlyMap<string, SyncedTable>,
  changes: readonly SyncRecord[],
  deletes: readonly DeleteEntry[],
  /** Per table: whether its last page held only new rows (see the fast path); shared by the pages of a group. */
  newRows: Map<string, boolean> = new Map(),
): Promise<ApplyStats> {
  const stats: ApplyStats = { upserted: 0, skipped: 0, deleted: 0 }
  const pending = changes.length > 0 || deletes.length > 0 ? await pendingIds(tx) : new Map<string, Set<string>>()
  for (const [name, recs] of groupByTable(changes)) {
    const t = tables.get(name)
    if (!t) {
      stats.skipped += recs.size
      continue
    }
    const pend = pending.get(name)
    let candidates = [...recs.values()]
    if (pend) {
      candidates = candidates.filter((r) => !pend.has(r.id))
      stats.skipped += recs.size - candidates.length
    }
    if (candidates.length === 0) continue
    if (newRows.get(name) !== false) {
      // Fast path: insert the page's rows, leaving existing ones alone. When every row was new (a large catch-up, or
      // rows another device created) that was all: nothing local could be newer. Otherwise the rows that existed
      // are decided below — the rows just inserted compare equal there and are written once more, harmlessly — and
      // the next pages of this table in the group go straight to the stamp check.
      const inserted = await runMany(
        tx,
        planFor(t).insertNewSql,
        candidates.map((r) => recordParams(t, r)),
      )
      if (inserted === candidates.length) {
        newRows.set(name, true)
        stats.upserted += inserted
        continue
      }
      newRows.set(name, false)
    }
    const stamps = await localStamps(
      tx,
      t,
      candidates.map((r) => r.id),
    )
    const apply: SyncRecord[] = []
    for (const rec of candidates) {
      const local = stamps.size > 0 ? stamps.get(rec.id) : undefined
      // Strictly newer only: at an equal stamp the server's copy wins, so server-set columns (created_at, defaults)
      // of our own pushed writes arrive; rows with unpushed changes are already protected above.
      if (local != null && compareTimestamps(local, rec.updated_at) > 0) {
        stats.skipped++
        continue
      }
      apply.push(rec)
    }
    await upsertRows(tx, t, apply)
    stats.upserted += apply.length
  }
  if (deletes.length > 0) {
    const byTable = new Map<string, SqlParam[][]>()
    for (const d of deletes) {
      // A row with a queued change keeps it: the push meets the server's state (record_deleted, a resurrection). The
      // delete may be older than that change (the app restored the row after a delete it pushed, whose changelog
      // entry arrives now): applied, it would delete the restored row again, and the accepted push would not undo
      // that locally.
      if (pending.get(d.table_name)?.has(d.id)) {
        stats.skipped++
        continue
      }
      let l = byTable.get(d.table_name)
      if (!l) {
        l = []
        byTable.set(d.table_name, l)
      }
      l.push([d.id])
    }
    for (const [name, ids] of byTable) {
      const t = tables.get(name)
      if (!t) continue
      stats.deleted += await runMany(tx, planFor(t).softDeleteSql, ids)
    }
  }
  return stats
}

/**
 * Applies snapshot records: insert-or-replace, except rows with a queued local change (Decision 21: a rebuild never
 * loses unpushed work).
 */
export async function applySnapshotPage(
  tx: SqliteExecutor,
  tables: ReadonlyMap<string, SyncedTable>,
  records: readonly SyncRecord[],
  unreceived: Unreceived = new Map(),
): Promise<ApplyStats> {
  const stats: ApplyStats = { upserted: 0, skipped: 0, deleted: 0 }
  if (records.length === 0) return stats
  const pending = await pendingIds(tx)
  for (const [name, recs] of groupByTable(records)) {
    const t = tables.get(name)
    if (!t) {
      stats.skipped += recs.size
      continue
    }
    const pend = pending.get(name)
    const apply: SyncRecord[] = []
    const fill = unreceived.get(name)
    for (const [id, rec] of recs) {
      if (!pend?.has(id)) apply.push(rec)
      else {
        stats.skipped++
        // Kept for its queued change; the server's values of columns it never received are still taken.
        if (fill) await fillUnreceived(tx, t, fill, id, recordParams(t, rec))
      }
    }
    await upsertRows(tx, t, apply)
    stats.upserted += apply.length
  }
  return stats
}

/** Applies consecutive snapshot pages in order (caller's sync-locked transaction); bulk tables without triggers. */
export async function applySnapshotGroup(
  tx: SqliteExecutor,
  tables: ReadonlyMap<string, SyncedTable>,
  pages: readonly (readonly SyncRecord[])[],
): Promise<void> {
  const unreceived = await readUnreceived(tx)
  await withCdcTriggersSuspended(tx, bulkTables(tables, pages), async () => {
    for (const records of pages) await applySnapshotPage(tx, tables, records, unreceived)
  })
}

/** Upserts one server row (a conflict's `server_version`): all schema columns, absent keys NULL. */
export async function upsertServerRecord(tx: SqliteExecutor, t: SyncedTable, rec: SyncRecord): Promise<void> {
  await tx.run(planFor(t).upsertSql, recordParams(t, rec))
}

/** Writes the stamps of an accepted push into the row (§4.3 step 3). */
export async function writeServerStamps(
  tx: SqliteExecutor,
  t: SyncedTable,
  id: string,
  updatedAt: string | undefined,
  deletedAt: string | undefined,
): Promise<void> {
  const sets: string[] = []
  const params: SqlParam[] = []
  if (updatedAt) {
    sets.push(`${quoteIdent(t.updatedAt)} = ?`)
    params.push(updatedAt)
  }
  if (deletedAt) {
    sets.push(`${quoteIdent(t.deletedAt)} = ?`)
    params.push(deletedAt)
  }
  if (sets.length === 0) return
  params.push(id)
  await tx.run(`UPDATE ${quoteIdent(t.name)} SET ${sets.join(', ')} WHERE ${quoteIdent(t.pk)} = ?`, params)
}

/**
 * Applies consecutive pull pages in order inside the caller's (sync-locked) transaction and stores the highest
 * checkpoint — only if it is above the stored one — and the merged known buckets.
 */
export async function applyPullGroup(
  tx: SqliteExecutor,
  tables: ReadonlyMap<string, SyncedTable>,
  pages: readonly Pick<PullResponse, 'changes' | 'deletes' | 'checkpoint' | 'bucket_updates'>[],
): Promise<ApplyStats> {
  const bulk = bulkTables(
    tables,
    pages.map((p) => p.changes),
  )
  return withCdcTriggersSuspended(tx, bulk, () => applyPages(tx, tables, pages))
}

/** Tables with at least BULK_ROWS changes in the group: applied without their (idle) CDC triggers. */
export const BULK_ROWS = 500

function bulkTables(tables: ReadonlyMap<string, SyncedTable>, pages: readonly (readonly SyncRecord[])[]): string[] {
  const counts = new Map<string, number>()
  for (const page of pages) for (const r of page) counts.set(r.table_name, (counts.get(r.table_name) ?? 0) + 1)
  return [...counts].filter(([name, n]) => n >= BULK_ROWS && tables.has(name)).map(([name]) => name)
}

async function applyPages(
  tx: SqliteExecutor,
  tables: ReadonlyMap<string, SyncedTable>,
  pages: readonly Pick<PullResponse, 'changes' | 'deletes' | 'checkpoint' | 'bucket_updates'>[],
): Promise<ApplyStats> {
  const total: ApplyStats = { upserted: 0, skipped: 0, deleted: 0 }
  const stored = Number((await getMeta(tx, 'checkpoint')) ?? '0') || 0
  let buckets = parseBuckets(await getMeta(tx, 'known_buckets'))
  let bucketsChanged = false
  let top = stored
  const newRows = new Map<string, boolean>()
  for (const page of pages) {
    const s = await applyPullPage(tx, tables, page.changes, page.deletes, newRows)
    total.upserted += s.upserted
    total.skipped += s.skipped
    total.deleted += s.deleted
    top = Math.max(top, page.checkpoint)
    const merged = mergeBuckets(buckets, page.bucket_updates)
    if (merged) {
      buckets = merged
      bucketsChanged = true
    }
  }
  // Checkpoints only move forward: a stale or replayed page must not rewind us.
  if (top > stored) await setMeta(tx, 'checkpoint', String(top))
  if (bucketsChanged) await setMeta(tx, 'known_buckets', JSON.stringify(buckets))
  return total
}

export function parseBuckets(raw: string | null): string[] {
  if (!raw) return []
  try {
    const v: unknown = JSON.parse(raw)
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
  } catch {
    return []
  }
}

/** Merges `bucket_updates` into the known list; null when nothing changed. */
export function mergeBuckets(known: string[], updates: PullResponse['bucket_updates']): string[] | null {
  if (!updates || (!updates.added?.length && !updates.removed?.length)) return null
  const removed = new Set(updates.removed ?? [])
  const out = known.filter((b) => !removed.has(b))
  for (const b of updates.added ?? []) if (!out.includes(b)) out.push(b)
  return out
}
