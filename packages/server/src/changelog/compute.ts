import type pg from 'pg'
import { type Descendant, findDescendants, inheritingChildren, type RebucketRoot } from '../buckets/descendants.js'
import { applyRowChange, type EdgeEntry, type EdgeState, isDeleted, moveTo } from '../buckets/edges.js'
import {
  type BucketRequest,
  type BucketResolver,
  type BucketResult,
  bucketsFromValue,
  type TextRow,
} from '../buckets/resolver.js'
import type { ResolvedTable } from '../registry/registry.js'
import { quoteIdent } from '../util/sql.js'
import type { Change, RowChange, WalTransaction } from './changes.js'
import type { BatchOutput } from './output.js'

/** How long to wait for decoded transactions to become visible before computing anyway. */
const VISIBILITY_TIMEOUT_MS = 5_000

/**
 * Waits until none of the batch's source transactions is still in progress for a new snapshot. The walsender can
 * send a transaction as soon as its commit record is flushed, a moment before the committing backend leaves the
 * proc array; a parent-chain lookup in that window would not see the transaction's own rows (a child inserted with
 * its parent would become a "parent not found" rule failure). Normally one cheap query.
 */
export async function waitUntilVisible(db: pg.ClientBase, txns: readonly WalTransaction[]): Promise<void> {
  const xids = txns.map((t) => t.xid).filter((x): x is number => x !== undefined && x !== 0)
  if (xids.length === 0) return
  const deadline = Date.now() + VISIBILITY_TIMEOUT_MS
  for (;;) {
    if ((await countInvisible(db, xids)) === 0 || Date.now() > deadline) return
    await new Promise((r) => setTimeout(r, 2))
  }
}

/** How many of the (committed) 32-bit `xids` a new snapshot does not see yet. */
export async function countInvisible(db: pg.ClientBase, xids: readonly number[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(INVISIBLE_SQL, [xids])
  return rows[0]?.n ?? 0
}

/**
 * The count for countInvisible. Each xid is widened to the 64-bit txid of the
 * snapshot's epoch nearest its xmax, then checked with `txid_visible_in_snapshot`: that covers both a transaction in
 * the snapshot's in-progress list and one at or above its xmax — the usual case for the newest transaction, which
 * stays above xmax until its backend leaves the proc array.
 */
const INVISIBLE_SQL = `
  WITH s AS (SELECT txid_current_snapshot() AS snap, txid_snapshot_xmax(txid_current_snapshot()) AS xmax),
  t AS (
    SELECT s.snap, s.xmax, ((s.xmax >> 32) << 32) | x AS t FROM s, unnest($1::bigint[]) AS x
  ),
  w AS (
    SELECT snap, CASE WHEN t > xmax + 2147483648 THEN t - 4294967296
                      WHEN t < xmax - 2147483648 THEN t + 4294967296 ELSE t END AS t FROM t
  )
  SELECT count(*)::int AS n FROM w WHERE t >= 0 AND NOT txid_visible_in_snapshot(t, snap)`

/** Computes the changelog rows and edge changes of `txns` (all to be applied) in WAL order. */
export async function computeBatch(
  db: pg.ClientBase,
  resolver: BucketResolver,
  txns: readonly WalTransaction[],
  state: EdgeState,
  out: BatchOutput,
): Promise<void> {
  await waitUntilVisible(db, txns)
  await computeChanges(
    db,
    resolver,
    txns.flatMap((t) => t.changes),
    state,
    out,
  )
}

/** Computes already visible changes in WAL order (a part of one big transaction, or a whole batch). */
export async function computeChanges(
  db: pg.ClientBase,
  resolver: BucketResolver,
  changes: readonly Change[],
  state: EdgeState,
  out: BatchOutput,
): Promise<void> {
  let segment: RowChange[] = []
  for (const c of changes) {
    if (c.kind === 'truncate') {
      await computeSegment(db, resolver, segment, state, out)
      segment = []
      await truncate(db, c.tables, state, out)
    } else segment.push(c)
  }
  await computeSegment(db, resolver, segment, state, out)
}

/** Processes row changes without a TRUNCATE among them: batched reads, then an in-memory pass in WAL order. */
async function computeSegment(
  db: pg.ClientBase,
  resolver: BucketResolver,
  changes: RowChange[],
  state: EdgeState,
  out: BatchOutput,
): Promise<void> {
  if (changes.length === 0) return
  await fillMissing(db, resolver, changes)
  const n = changes.length
  // The record's edge entry per change (from the load), and the changes whose buckets are needed: deletes only when
  // the record may have no edges by then (PROTOCOL §3 J 122 fallback). Skipping the ones certain to have edges avoids
  // pointless parent lookups; a lookup that fails is only recorded as a rule failure if the fallback is really used.
  const entries: EdgeEntry[] = new Array(n)
  await state.load(db, changes, entries)
  // Records seen earlier in the segment: only deletes ask, so the set is only kept when there are any.
  const seen = changes.some((c) => c.kind === 'delete') ? new Set<EdgeEntry>() : null
  const reqIdx: number[] = []
  const reqs: BucketRequest[] = []
  for (let i = 0; i < n; i++) {
    const c = changes[i] as RowChange
    const e = entries[i] as EdgeEntry
    if (seen !== null) {
      const skip = c.kind === 'delete' && e.cur.size > 0 && !seen.has(e)
      seen.add(e)
      if (skip) continue
    }
    reqIdx.push(i)
    reqs.push({
      table: c.table,
      op: c.kind === 'insert' ? 'create' : c.kind,
      row: c.row,
      oldRow: c.oldRow,
      jsonColumns: c.jsonColumns,
    })
  }
  // A row written before the capture started (an application adopting Synchro has rows already; the snapshot gives
  // them to clients) has no edges: the capture never recorded its buckets. An update that moves it must still leave
  // the buckets it was in, or their clients keep it for good — so for a live old row without edges, the buckets
  // its old row names stand in for the edges, as a delete without edges falls back to them (§3 J 122).
  const oldIdx: number[] = []
  for (let i = 0; i < n; i++) {
    const c = changes[i] as RowChange
    if (c.kind !== 'update' || (entries[i] as EdgeEntry).cur.size > 0 || !liveOldRow(c)) continue
    oldIdx.push(i)
    reqs.push({ table: c.table, op: 'delete', row: c.oldRow as TextRow, oldRow: null, jsonColumns: c.jsonColumns })
  }
  const resolved = await resolver.resolve(db, reqs)
  const results: (BucketResult | undefined)[] = new Array(n)
  for (let j = 0; j < reqIdx.length; j++) results[reqIdx[j] as number] = resolved[j]
  const olds: (BucketResult | undefined)[] = new Array(n)
  for (let j = 0; j < oldIdx.length; j++) olds[oldIdx[j] as number] = resolved[reqIdx.length + j]

  // Decision 15: updates that change what descendants inherit re-bucket them.
  const roots: RebucketRoot[] = []
  const rootOf: number[] = []
  for (let i = 0; i < n; i++) {
    const c = changes[i] as RowChange
    if (c.kind !== 'update') continue
    const inherited = inheritedBuckets(resolver, c, results[i])
    if (inherited) {
      roots.push({ table: c.table, id: c.id, buckets: inherited })
      rootOf[i] = roots.length - 1
    }
  }
  const byRoot = new Map<number, Descendant[]>()
  if (roots.length > 0) {
    const descendants = await findDescendants(db, resolver, roots)
    await state.load(db, descendants)
    for (const d of descendants) {
      const a = byRoot.get(d.root)
      if (a) a.push(d)
      else byRoot.set(d.root, [d])
    }
  }

  const gone = new Map<string, ReadonlySet<string>>() // hard deletes of the segment: the buckets each record was in
  for (let i = 0; i < n; i++) {
    const c = changes[i] as RowChange
    const e = entries[i] as EdgeEntry
    // Still without edges here (an earlier change of the segment may have given it some): see `oldIdx`. A failed
    // resolution of the old row is no rule failure: the record is then handled as before.
    const old = olds[i]
    if (old?.ok && e.cur.size === 0) e.cur = old.set ?? new Set(old.buckets)
    if (c.kind === 'delete') inheritFromDeletedParent(c, results[i], e, gone)
    const before = e.cur
    applyRowChange(c, results[i], e, out, isDeleted(c))
    if (c.kind === 'delete') gone.set(recordKey(c.table.tableName, c.id), deletedFrom(before, results[i]))
    const root = rootOf[i]
    if (root === undefined) continue
    const target = (roots[root] as RebucketRoot).buckets
    for (const d of byRoot.get(root) ?? []) {
      const de = state.get(d.table.tableName, d.id) as EdgeEntry
      // A live descendant without edges (written before the capture started) inherited the buckets the root was in.
      if (!d.deleted && de.cur.size === 0) de.cur = before
      moveTo(de, d.deleted ? [] : target, out)
    }
  }
}

/**
 * A hard delete of a record without edges whose buckets come from its parent, and the parent is gone: deleted earlier
 * in the segment, as `ON DELETE CASCADE` does (the parent's delete comes first in the WAL). Such a record predates the
 * capture (no edges) and its resolution fails (parent not found): it was in the buckets its parent was in, so those
 * stand in for its edges and it leaves them (op 3) instead of ending as a rule failure the devices never hear of.
 */
function inheritFromDeletedParent(
  c: RowChange,
  r: BucketResult | undefined,
  e: EdgeEntry,
  gone: ReadonlyMap<string, ReadonlySet<string>>,
): void {
  const t = c.table
  if (e.cur.size > 0 || r?.ok !== false || !t.parentTable || !t.parentFkColumn) return
  const fk = c.row[t.parentFkColumn]
  const parent = fk == null ? undefined : gone.get(recordKey(t.parentTable, String(fk)))
  if (parent && parent.size > 0) e.cur = new Set(parent)
}

/** The buckets a deleted record was in: its edges, else its resolved buckets. */
function deletedFrom(edges: ReadonlySet<string>, r: BucketResult | undefined): ReadonlySet<string> {
  if (edges.size > 0) return edges
  return r?.ok ? (r.set ?? new Set(r.buckets)) : edges
}

function recordKey(table: string, id: string): string {
  return `${table}\u0000${id}`
}

/** An update's old row is known in full (REPLICA IDENTITY FULL) and was not soft-deleted. */
function liveOldRow(c: RowChange): boolean {
  return c.oldRow !== null && c.oldRow[c.table.deletedAtColumn] === null
}

/**
 * What children of this row inherit, when an update may have changed it; undefined when nothing to propagate.
 * Root tables pass on their bucket-column value, intermediate tables the buckets found through their own parent.
 */
function inheritedBuckets(resolver: BucketResolver, c: RowChange, r: BucketResult | undefined): string[] | undefined {
  const t = c.table
  if (inheritingChildren(resolver, t).length === 0) return undefined
  const column = t.bucketByColumn ?? t.ownerColumn
  if (column) {
    if (c.oldRow && column in c.oldRow && c.oldRow[column] === c.row[column]) return undefined
    const v = c.row[column]
    if (v === undefined) return undefined
    return bucketsFromValue(v, {
      kind: 'column',
      column,
      prefix: t.bucketPrefix ?? 'user:',
      globalWhenNull: t.globalWhenBucketNull,
    })
  }
  const fk = t.parentFkColumn
  if (!fk) return undefined
  if (c.oldRow && fk in c.oldRow && c.oldRow[fk] === c.row[fk]) return undefined
  return r?.ok ? r.buckets : undefined
}

/** TRUNCATE: op 3 for every edge of the table; the table's edges are then fully known in memory. */
async function truncate(db: pg.ClientBase, tables: ResolvedTable[], state: EdgeState, out: BatchOutput): Promise<void> {
  for (const t of tables) {
    await state.loadTable(db, t.tableName)
    for (const e of state.ofTable(t.tableName)) moveTo(e, [], out)
  }
}

/** Re-reads columns that arrived as "unchanged TOAST" without an old value (only without REPLICA IDENTITY FULL). */
async function fillMissing(db: pg.ClientBase, resolver: BucketResolver, changes: RowChange[]): Promise<void> {
  const byTable = new Map<ResolvedTable, RowChange[]>()
  for (const c of changes) {
    if (!c.missing || c.missing.length === 0) continue
    const a = byTable.get(c.table)
    if (a) a.push(c)
    else byTable.set(c.table, [c])
  }
  for (const [t, cs] of byTable) {
    const cols = [...new Set(cs.flatMap((c) => c.missing ?? []))]
    const idType = resolver.catalog.type(t, t.idColumn) ?? 'text'
    const { rows } = await db.query<{ id: string; v: Record<string, string | null> }>(
      `SELECT x.${t.q.id}::text AS id, jsonb_build_object(${cols.map((_, i) => `$${i + 2}::text, x.${quoteIdent(cols[i] as string)}::text`).join(', ')}) AS v
           FROM ${t.sqlName} x WHERE x.${t.q.id} = ANY($1::${idType}[])`,
      [[...new Set(cs.map((c) => c.id))], ...cols],
    )
    const byId = new Map(rows.map((r) => [r.id, r.v]))
    for (const c of cs) {
      const v = byId.get(c.id)
      for (const col of c.missing ?? []) c.row[col] = v ? (v[col] ?? null) : null
      c.missing = undefined
    }
  }
}
