import type pg from 'pg'
import { type Descendant, findDescendants, inheritingChildren, type RebucketRoot } from '../buckets/descendants.js'
import {
  type BucketRequest,
  type BucketResolver,
  type BucketResult,
  bucketsFromValue,
  type TextRow,
} from '../buckets/resolver.js'
import type { ResolvedTable } from '../registry/registry.js'
import { quoteIdent } from '../util/sql.js'
import { WalApplyError } from './errors.js'
import { maxLsn as biggerLsn } from './lsn.js'

/** Changelog operation codes (PROTOCOL.md §1.6). */
export const OP_INSERT = 1
export const OP_UPDATE = 2
export const OP_DELETE = 3
export type ChangeOp = typeof OP_INSERT | typeof OP_UPDATE | typeof OP_DELETE

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
}

export interface ApplyResult {
  /** Highest end LSN covered (what was stored in sync_wal_position). */
  lsn: bigint
  changelogRows: number
  ruleFailures: number
  /** Transactions skipped because sync_wal_position already covered them (replay after a crash before the ack). */
  skippedTransactions: number
}

export interface Logger {
  info(obj: unknown, msg?: string): void
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
  debug(obj: unknown, msg?: string): void
}

interface EdgeEntry {
  table: string
  id: string
  /** Edges as stored before this batch. */
  initial: Set<string>
  /** Edges after the changes simulated so far. */
  cur: Set<string>
}

/** The changelog/edges/failures rows one batch produces, in order. */
class BatchOutput {
  readonly clBucket: string[] = []
  readonly clTable: string[] = []
  readonly clRecord: string[] = []
  readonly clOp: number[] = []
  readonly fTable: string[] = []
  readonly fRecord: string[] = []
  readonly fOp: number[] = []
  readonly fError: string[] = []
  readonly fPayload: string[] = []

  emit(bucket: string, table: string, id: string, op: ChangeOp): void {
    this.clBucket.push(bucket)
    this.clTable.push(table)
    this.clRecord.push(id)
    this.clOp.push(op)
  }

  fail(c: RowChange, op: ChangeOp, error: string): void {
    this.fTable.push(c.table.tableName)
    this.fRecord.push(c.id)
    this.fOp.push(op)
    this.fError.push(error)
    this.fPayload.push(JSON.stringify(c.row))
  }
}

const edgeKey = (table: string, id: string): string => `${table}\u0000${id}`

/**
 * Turns committed source transactions into changelog rows and bucket edges, exactly once: everything, including the
 * new confirmed LSN, is written in ONE PostgreSQL transaction, and transactions at or below the stored LSN (read
 * under a row lock) are skipped. Per batch the number of statements is fixed, independent of the number of rows.
 */
export class BatchApplier {
  constructor(
    readonly pool: pg.Pool,
    readonly resolver: BucketResolver,
    readonly slotName: string,
    readonly logger?: Logger,
  ) {}

  /** The stored confirmed LSN for the slot (0 when none). */
  async storedLsn(): Promise<bigint> {
    const { rows } = await this.pool.query<{ lsn: string }>(
      'SELECT confirmed_lsn::text AS lsn FROM sync_wal_position WHERE slot_name = $1',
      [this.slotName],
    )
    return rows[0] ? BigInt(rows[0].lsn) : 0n
  }

  async apply(txns: readonly WalTransaction[]): Promise<ApplyResult> {
    const client = await this.pool.connect()
    let released = false
    try {
      await client.query('BEGIN')
      // Locks the position row: concurrent appliers for the same slot (a stale leader) serialise here, and the
      // value read is the one this transaction will overwrite, so "skip what is stored" is race-free.
      const { rows } = await client.query<{ lsn: string }>(
        `INSERT INTO sync_wal_position (slot_name, confirmed_lsn) VALUES ($1, 0)
         ON CONFLICT (slot_name) DO UPDATE SET slot_name = EXCLUDED.slot_name
         RETURNING confirmed_lsn::text AS lsn`,
        [this.slotName],
      )
      const stored = BigInt(rows[0]?.lsn ?? '0')
      const todo = txns.filter((t) => t.endLsn > stored)
      const maxLsn = txns.reduce((m, t) => biggerLsn(m, t.endLsn), stored)
      if (todo.length === 0) {
        await client.query('ROLLBACK')
        return { lsn: stored, changelogRows: 0, ruleFailures: 0, skippedTransactions: txns.length }
      }
      const out = new BatchOutput()
      const state = new EdgeState()
      let segment: RowChange[] = []
      for (const t of todo) {
        for (const c of t.changes) {
          if (c.kind === 'truncate') {
            await this.#segment(client, segment, state, out)
            segment = []
            await this.#truncate(client, c.tables, state, out)
          } else segment.push(c)
        }
      }
      await this.#segment(client, segment, state, out)
      await this.#write(client, out, state, maxLsn)
      await client.query('COMMIT')
      return {
        lsn: maxLsn,
        changelogRows: out.clOp.length,
        ruleFailures: out.fOp.length,
        skippedTransactions: txns.length - todo.length,
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      // A broken connection must not go back to the pool.
      client.release(true)
      released = true
      throw new WalApplyError(`writing a WAL batch failed: ${(err as Error).message}`, { cause: err })
    } finally {
      if (!released) client.release()
    }
  }

  /** Processes row changes without a TRUNCATE among them: batched reads, then an in-memory pass in WAL order. */
  async #segment(db: pg.ClientBase, changes: RowChange[], state: EdgeState, out: BatchOutput): Promise<void> {
    if (changes.length === 0) return
    await this.#fillMissing(db, changes)
    const seen = new Set<string>()
    const needFallback: boolean[] = []
    await state.load(
      db,
      changes.map((c) => [c.table.tableName, c.id]),
    )
    // Deletes only need computed buckets when the record may have no edges by then (PROTOCOL §3 J 122 fallback).
    // Skipping the ones certain to have edges avoids pointless parent lookups; a lookup that fails is only recorded
    // as a rule failure if the fallback is really used.
    for (const c of changes) {
      const k = edgeKey(c.table.tableName, c.id)
      needFallback.push(c.kind !== 'delete' || seen.has(k) || (state.get(k)?.cur.size ?? 0) === 0)
      seen.add(k)
    }
    const reqIdx: number[] = []
    const reqs: BucketRequest[] = []
    for (const [i, c] of changes.entries()) {
      if (!needFallback[i]) continue
      reqIdx.push(i)
      reqs.push({
        table: c.table,
        op: c.kind === 'insert' ? 'create' : c.kind,
        row: c.row,
        oldRow: c.oldRow,
        jsonColumns: c.jsonColumns,
      })
    }
    const resolved = await this.resolver.resolve(db, reqs)
    const results: (BucketResult | undefined)[] = new Array(changes.length)
    for (const [j, i] of reqIdx.entries()) results[i] = resolved[j]

    // Decision 15: updates that change what descendants inherit re-bucket them.
    const roots: RebucketRoot[] = []
    const rootOf: number[] = []
    for (const [i, c] of changes.entries()) {
      if (c.kind !== 'update') continue
      const inherited = this.#inheritedBuckets(c, results[i])
      if (inherited) {
        roots.push({ table: c.table, id: c.id, buckets: inherited })
        rootOf[i] = roots.length - 1
      }
    }
    const byRoot = new Map<number, Descendant[]>()
    if (roots.length > 0) {
      const descendants = await findDescendants(db, this.resolver, roots)
      await state.load(
        db,
        descendants.map((d) => [d.table.tableName, d.id]),
      )
      for (const d of descendants) {
        const a = byRoot.get(d.root)
        if (a) a.push(d)
        else byRoot.set(d.root, [d])
      }
    }

    for (const [i, c] of changes.entries()) {
      const e = state.get(edgeKey(c.table.tableName, c.id)) as EdgeEntry
      const r = results[i]
      applyRowChange(c, r, e, out, isDeleted(c))
      const root = rootOf[i]
      if (root === undefined) continue
      const target = (roots[root] as RebucketRoot).buckets
      for (const d of byRoot.get(root) ?? []) {
        const de = state.get(edgeKey(d.table.tableName, d.id)) as EdgeEntry
        moveTo(de, d.deleted ? [] : target, out)
      }
    }
  }

  /**
   * What children of this row inherit, when an update may have changed it; undefined when nothing to propagate.
   * Root tables pass on their bucket-column value, intermediate tables the buckets found through their own parent.
   */
  #inheritedBuckets(c: RowChange, r: BucketResult | undefined): string[] | undefined {
    const t = c.table
    if (inheritingChildren(this.resolver, t).length === 0) return undefined
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
  async #truncate(db: pg.ClientBase, tables: ResolvedTable[], state: EdgeState, out: BatchOutput): Promise<void> {
    for (const t of tables) {
      await state.loadTable(db, t.tableName)
      for (const e of state.ofTable(t.tableName)) moveTo(e, [], out)
    }
  }

  /** Re-reads columns that arrived as "unchanged TOAST" without an old value (only without REPLICA IDENTITY FULL). */
  async #fillMissing(db: pg.ClientBase, changes: RowChange[]): Promise<void> {
    const byTable = new Map<ResolvedTable, RowChange[]>()
    for (const c of changes) {
      if (!c.missing || c.missing.length === 0) continue
      const a = byTable.get(c.table)
      if (a) a.push(c)
      else byTable.set(c.table, [c])
    }
    for (const [t, cs] of byTable) {
      const cols = [...new Set(cs.flatMap((c) => c.missing ?? []))]
      const idType = this.resolver.catalog.type(t, t.idColumn) ?? 'text'
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

  /** One statement writes changelog rows, edge changes, rule failures and the new confirmed LSN. */
  async #write(db: pg.ClientBase, out: BatchOutput, state: EdgeState, lsn: bigint): Promise<void> {
    const del: [string[], string[], string[]] = [[], [], []]
    const ins: [string[], string[], string[]] = [[], [], []]
    for (const e of state.entries()) {
      for (const b of e.initial) if (!e.cur.has(b)) pushEdge(del, e, b)
      for (const b of e.cur) if (!e.initial.has(b)) pushEdge(ins, e, b)
    }
    // Deleted and inserted edge keys are disjoint (per record, a bucket is either removed or added), so the
    // data-modifying CTEs, which share one snapshot, never touch the same row twice. PostgreSQL runs every
    // data-modifying CTE even when the main statement does not reference it.
    await db.query(
      `WITH cl AS (
         INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
         SELECT x.b, x.t, x.r, x.o FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[])
           WITH ORDINALITY AS x(b, t, r, o, n) ORDER BY x.n
         RETURNING 1
       ), ed AS (
         DELETE FROM sync_bucket_edges e USING unnest($5::text[], $6::text[], $7::text[]) AS x(t, r, b)
          WHERE e.table_name = x.t AND e.record_id = x.r AND e.bucket_id = x.b
         RETURNING 1
       ), ei AS (
         INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id)
         SELECT * FROM unnest($8::text[], $9::text[], $10::text[])
         ON CONFLICT (table_name, record_id, bucket_id) DO UPDATE SET updated_at = now()
         RETURNING 1
       ), rf AS (
         INSERT INTO sync_rule_failures (table_name, record_id, operation, error_text, payload)
         SELECT * FROM unnest($11::text[], $12::text[], $13::int2[], $14::text[], $15::jsonb[])
         RETURNING 1
       )
       INSERT INTO sync_wal_position (slot_name, confirmed_lsn, updated_at)
       VALUES ($16, $17::bigint, now())
       ON CONFLICT (slot_name) DO UPDATE
         SET confirmed_lsn = GREATEST(sync_wal_position.confirmed_lsn, EXCLUDED.confirmed_lsn), updated_at = now()`,
      [
        out.clBucket,
        out.clTable,
        out.clRecord,
        out.clOp,
        ...del,
        ...ins,
        out.fTable,
        out.fRecord,
        out.fOp,
        out.fError,
        out.fPayload,
        this.slotName,
        lsn.toString(),
      ],
    )
  }
}

function pushEdge(cols: [string[], string[], string[]], e: EdgeEntry, b: string): void {
  cols[0].push(e.table)
  cols[1].push(e.id)
  cols[2].push(b)
}

function isDeleted(c: RowChange): boolean {
  const v = c.row[c.table.deletedAtColumn]
  return v !== undefined && v !== null
}

/** PROTOCOL.md §3 J rules for one row change, against the record's current edges `e`. */
function applyRowChange(c: RowChange, r: BucketResult | undefined, e: EdgeEntry, out: BatchOutput, deleted: boolean) {
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
    const keep = new Set(r.buckets)
    for (const b of e.cur) if (!keep.has(b)) out.emit(b, t, c.id, OP_DELETE)
    e.cur = keep
    return
  }
  // Update: new buckets first (the row appears in the new owner's bucket before it leaves the old one).
  const next = new Set(r.buckets)
  for (const b of next) if (!e.cur.has(b)) out.emit(b, t, c.id, OP_INSERT)
  for (const b of next) if (e.cur.has(b)) out.emit(b, t, c.id, OP_UPDATE)
  for (const b of e.cur) if (!next.has(b)) out.emit(b, t, c.id, OP_DELETE)
  e.cur = next
}

/** Moves a record to exactly `target` buckets: op 1 where it arrives, op 3 where it leaves. */
function moveTo(e: EdgeEntry, target: readonly string[], out: BatchOutput): void {
  const next = new Set(target)
  for (const b of next) if (!e.cur.has(b)) out.emit(b, e.table, e.id, OP_INSERT)
  for (const b of e.cur) if (!next.has(b)) out.emit(b, e.table, e.id, OP_DELETE)
  e.cur = next
}

/** In-memory view of sync_bucket_edges for the records a batch touches, loaded with batched queries. */
class EdgeState {
  readonly #entries = new Map<string, EdgeEntry>()
  readonly #byTable = new Map<string, Set<EdgeEntry>>()
  /** Tables whose every edge is in memory (after a TRUNCATE): unknown records of them have no edges. */
  readonly #full = new Set<string>()

  get(k: string): EdgeEntry | undefined {
    return this.#entries.get(k)
  }

  entries(): IterableIterator<EdgeEntry> {
    return this.#entries.values()
  }

  ofTable(table: string): Iterable<EdgeEntry> {
    return this.#byTable.get(table) ?? []
  }

  #add(table: string, id: string, buckets: string[]): void {
    const e: EdgeEntry = { table, id, initial: new Set(buckets), cur: new Set(buckets) }
    this.#entries.set(edgeKey(table, id), e)
    let s = this.#byTable.get(table)
    if (!s) {
      s = new Set()
      this.#byTable.set(table, s)
    }
    s.add(e)
  }

  /** Loads the edges of records not yet in memory (one query). */
  async load(db: pg.ClientBase, keys: Iterable<[string, string]>): Promise<void> {
    const tables: string[] = []
    const ids: string[] = []
    const want = new Set<string>()
    for (const [t, id] of keys) {
      const k = edgeKey(t, id)
      if (this.#entries.has(k) || want.has(k)) continue
      if (this.#full.has(t)) {
        this.#add(t, id, [])
        continue
      }
      want.add(k)
      tables.push(t)
      ids.push(id)
    }
    if (tables.length === 0) return
    // Per table `record_id = ANY(...)`: an index scan on the edges PK, much cheaper than a join on unnest() for
    // thousands of keys. Batches touch few tables, so this is a handful of statements at most.
    const idsByTable = new Map<string, string[]>()
    for (const [i, t] of tables.entries()) {
      const a = idsByTable.get(t)
      if (a) a.push(ids[i] as string)
      else idsByTable.set(t, [ids[i] as string])
    }
    const rows: { t: string; r: string; b: string }[] = []
    for (const [t, tids] of idsByTable) {
      const res = await db.query<{ t: string; r: string; b: string }>(
        `SELECT table_name AS t, record_id AS r, bucket_id AS b
           FROM sync_bucket_edges WHERE table_name = $1 AND record_id = ANY($2::text[])`,
        [t, tids],
      )
      for (const r of res.rows) rows.push(r)
    }
    const found = new Map<string, string[]>()
    for (const r of rows) {
      const k = edgeKey(r.t, r.r)
      const a = found.get(k)
      if (a) a.push(r.b)
      else found.set(k, [r.b])
    }
    for (const [i, t] of tables.entries()) {
      const id = ids[i] as string
      this.#add(t, id, found.get(edgeKey(t, id)) ?? [])
    }
  }

  /** Loads every edge of a table (TRUNCATE). */
  async loadTable(db: pg.ClientBase, table: string): Promise<void> {
    if (this.#full.has(table)) return
    const { rows } = await db.query<{ r: string; b: string }>(
      'SELECT record_id AS r, bucket_id AS b FROM sync_bucket_edges WHERE table_name = $1',
      [table],
    )
    const found = new Map<string, string[]>()
    for (const r of rows) {
      const a = found.get(r.r)
      if (a) a.push(r.b)
      else found.set(r.r, [r.b])
    }
    for (const [id, bs] of found) if (!this.#entries.has(edgeKey(table, id))) this.#add(table, id, bs)
    this.#full.add(table)
  }
}
