import { type ChangelogOp, OP_DELETE, OP_INSERT, OP_UPDATE } from '@synchro/protocol'
import type pg from 'pg'
import type { RowChange } from '../changelog/changes.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { BucketResult } from './resolver.js'

/** A record's bucket edges (rows of sync_bucket_edges) while a batch is computed. */
export interface EdgeEntry {
  table: string
  id: string
  /** Edges as stored before this batch. Sets are never mutated in place (shared with the next batch's state). */
  readonly initial: ReadonlySet<string>
  /** Edges after the changes simulated so far. */
  cur: ReadonlySet<string>
}

/** Where the edge rules put their output: changelog rows and rule failures. */
export interface ChangeSink {
  emit(bucket: string, table: string, id: string, op: ChangelogOp): void
  fail(c: RowChange, op: ChangelogOp, error: string): void
}

export function isDeleted(c: RowChange): boolean {
  const v = c.row[c.table.deletedAtColumn]
  return v !== undefined && v !== null
}

/** The protocol's capture rules (§3 J) for one row change, against the record's current edges `e`. */
export function applyRowChange(
  c: RowChange,
  r: BucketResult | undefined,
  e: EdgeEntry,
  out: ChangeSink,
  deleted: boolean,
) {
  const t = c.table.tableName
  if (c.kind === 'delete' || (c.kind === 'update' && deleted)) {
    if (e.cur.size > 0) return moveTo(e, [], out)
    // No edges: the row was never bucketed or is already soft-deleted; send op 3 to its computed buckets again.
    if (!r) return
    if (!r.ok) return out.fail(c, OP_DELETE, r.error)
    for (const b of r.buckets) out.emit(b, t, c.id, OP_DELETE)
    return
  }
  const op = c.kind === 'insert' ? OP_INSERT : OP_UPDATE
  if (!r) return
  if (!r.ok) return out.fail(c, op, r.error)
  if (c.kind === 'insert') {
    // Replay safety (§3 J 126): a bucket already holding an edge gets op 2, never a second op 1.
    for (const b of r.buckets) out.emit(b, t, c.id, e.cur.has(b) ? OP_UPDATE : OP_INSERT)
    const keep = r.set ?? new Set(r.buckets)
    if (e.cur.size > 0) for (const b of e.cur) if (!keep.has(b)) out.emit(b, t, c.id, OP_DELETE)
    e.cur = keep
    return
  }
  // Update: new buckets first (the row appears in the new owner's bucket before it leaves the old one).
  if (e.cur === r.set || (r.buckets.length === e.cur.size && r.buckets.every((b) => e.cur.has(b)))) {
    // Same buckets (the common update): op 2 everywhere, edges unchanged (no new set, no edge write).
    for (const b of r.buckets) out.emit(b, t, c.id, OP_UPDATE)
    return
  }
  const next = r.set ?? new Set(r.buckets)
  for (const b of next) if (!e.cur.has(b)) out.emit(b, t, c.id, OP_INSERT)
  for (const b of next) if (e.cur.has(b)) out.emit(b, t, c.id, OP_UPDATE)
  for (const b of e.cur) if (!next.has(b)) out.emit(b, t, c.id, OP_DELETE)
  e.cur = next
}

/** Moves a record to exactly `target` buckets: op 1 where it arrives, op 3 where it leaves. */
export function moveTo(e: EdgeEntry, target: readonly string[], out: ChangeSink): void {
  const next = new Set(target)
  for (const b of next) if (!e.cur.has(b)) out.emit(b, e.table, e.id, OP_INSERT)
  for (const b of e.cur) if (!next.has(b)) out.emit(b, e.table, e.id, OP_DELETE)
  e.cur = next
}

export const NO_EDGES: ReadonlySet<string> = new Set()

/**
 * A `text[]` parameter for thousands of ids. JSON quoting equals array-literal quoting when no backslash escape is
 * needed (no quote, backslash or control character in any id): one native JSON.stringify instead of pg's per-element
 * escaping. Otherwise the array itself (pg escapes it).
 */
export function textArray(ids: string[]): string | string[] {
  const j = JSON.stringify(ids)
  return j.includes('\\') ? ids : `{${j.slice(1, -1)}}`
}

/**
 * In-memory view of sync_bucket_edges for the records a batch touches, loaded with batched queries. A state built
 * on a `base` (the batch being written meanwhile) takes the records that batch touches from its final state.
 */
export class EdgeState {
  /** table → record id → entry. */
  readonly #tables = new Map<string, Map<string, EdgeEntry>>()
  /** Tables whose every edge is in memory (after a TRUNCATE): unknown records of them have no edges. */
  readonly #full = new Set<string>()
  #base: EdgeState | undefined

  constructor(base?: EdgeState) {
    this.#base = base
  }

  /** Forgets the base once everything is loaded (so states do not chain up in memory). */
  dropBase(): void {
    this.#base = undefined
  }

  get(table: string, id: string): EdgeEntry | undefined {
    return this.#tables.get(table)?.get(id)
  }

  *entries(): IterableIterator<EdgeEntry> {
    for (const m of this.#tables.values()) yield* m.values()
  }

  /** Every edge of the table is in memory: a TRUNCATE of it was computed in this state. */
  loadedWhole(table: string): boolean {
    return this.#full.has(table)
  }

  ofTable(table: string): Iterable<EdgeEntry> {
    return this.#tables.get(table)?.values() ?? []
  }

  #table(table: string): Map<string, EdgeEntry> {
    let m = this.#tables.get(table)
    if (!m) {
      m = new Map()
      this.#tables.set(table, m)
    }
    return m
  }

  /**
   * Loads the edges of records not yet in memory (one query per table). `into` (optional) receives each record's
   * entry at its index, so the caller needs no lookup of its own; the entries are final once this resolves.
   */
  async load(
    db: pg.ClientBase,
    records: Iterable<{ table: ResolvedTable; id: string }>,
    into?: EdgeEntry[],
  ): Promise<void> {
    const idsByTable = new Map<string, string[]>()
    let t = ''
    let m: Map<string, EdgeEntry> | undefined
    let full = false
    let base: Map<string, EdgeEntry> | undefined
    let ids: string[] | undefined
    let i = 0
    for (const r of records) {
      if (r.table.tableName !== t || !m) {
        t = r.table.tableName
        m = this.#table(t)
        full = this.#full.has(t)
        base = this.#base ? this.#base.#tables.get(t) : undefined
        ids = idsByTable.get(t)
      }
      const id = r.id
      let e = m.get(id)
      if (e === undefined) {
        const b = base?.get(id)
        const known = b ? b.cur : full ? NO_EDGES : undefined
        // Placeholder until the query below answers; the id is then also de-duplicated for it.
        e = { table: t, id, initial: known ?? NO_EDGES, cur: known ?? NO_EDGES }
        m.set(id, e)
        if (!known) {
          if (ids) ids.push(id)
          else {
            ids = [id]
            idsByTable.set(t, ids)
          }
        }
      }
      if (into) into[i] = e
      i++
    }
    // Per table `record_id = ANY(...)`: an index scan on the edges PK, much cheaper than a join on unnest() for
    // thousands of keys. Batches touch few tables, so this is a handful of statements at most.
    for (const [table, ids] of idsByTable) {
      const res = await db.query<{ r: string; b: string }>(
        'SELECT record_id AS r, bucket_id AS b FROM sync_bucket_edges WHERE table_name = $1 AND record_id = ANY($2::text[])',
        [table, textArray(ids)],
      )
      const tm = this.#table(table)
      // Every id asked for has its placeholder (with NO_EDGES) in `tm`: fill it in place, no map of its own.
      for (const row of res.rows) {
        const e = tm.get(row.r) as { initial: ReadonlySet<string>; cur: ReadonlySet<string> } | undefined
        if (e === undefined) {
          const bs = new Set([row.b])
          tm.set(row.r, { table, id: row.r, initial: bs, cur: bs })
        } else if (e.initial === NO_EDGES) e.initial = e.cur = new Set([row.b])
        else (e.cur as Set<string>).add(row.b)
      }
    }
  }

  /** Loads every edge of a table (TRUNCATE); records the base touches take its final state. */
  async loadTable(db: pg.ClientBase, table: string): Promise<void> {
    if (this.#full.has(table)) return
    const m = this.#table(table)
    for (const b of this.#base?.ofTable(table) ?? []) {
      if (!m.has(b.id)) m.set(b.id, { table, id: b.id, initial: b.cur, cur: b.cur })
    }
    const { rows } = await db.query<{ r: string; b: string }>(
      'SELECT record_id AS r, bucket_id AS b FROM sync_bucket_edges WHERE table_name = $1',
      [table],
    )
    const found = new Map<string, Set<string>>()
    for (const r of rows) {
      const a = found.get(r.r)
      if (a) a.add(r.b)
      else found.set(r.r, new Set([r.b]))
    }
    for (const [id, bs] of found) if (!m.has(id)) m.set(id, { table, id, initial: bs, cur: bs })
    this.#full.add(table)
  }
}
