import { type ChangelogOp, OP_DELETE, OP_INSERT, OP_UPDATE } from '@synchro/protocol'
import type pg from 'pg'
import { type Descendant, findDescendants, inheritingChildren, type RebucketRoot } from '../buckets/descendants.js'
import {
  type BucketRequest,
  type BucketResolver,
  type BucketResult,
  bucketsFromValue,
  type TextRow,
} from '../buckets/resolver.js'
import { CHANGELOG_CHANNEL, notifyBuckets } from '../changelog/listener.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { Logger } from '../util/log.js'
import { quoteIdent } from '../util/sql.js'
import { copyFrom, copyText } from './copy.js'
import { WalApplyError } from './errors.js'
import { maxLsn as biggerLsn } from './lsn.js'

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
}

/** How long to wait for decoded transactions to become visible before computing anyway. */
const VISIBILITY_TIMEOUT_MS = 5_000

/**
 * Waits until none of the batch's source transactions is still in progress for a new snapshot. The walsender can
 * send a transaction as soon as its commit record is flushed, a moment before the committing backend leaves the
 * proc array; a parent-chain lookup in that window would not see the transaction's own rows (a child inserted with
 * its parent would become a "parent not found" rule failure). Normally one cheap query.
 */
async function waitUntilVisible(db: pg.ClientBase, txns: readonly WalTransaction[]): Promise<void> {
  const xids = txns.map((t) => t.xid).filter((x): x is number => x !== undefined && x !== 0)
  if (xids.length === 0) return
  const deadline = Date.now() + VISIBILITY_TIMEOUT_MS
  for (;;) {
    // txid_snapshot_xip gives 64-bit txids; the low 32 bits are the xid pgoutput sends.
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM txid_snapshot_xip(txid_current_snapshot()) AS x
        WHERE (x % 4294967296) = ANY($1::bigint[])`,
      [xids],
    )
    if ((rows[0]?.n ?? 0) === 0 || Date.now() > deadline) return
    await new Promise((r) => setTimeout(r, 2))
  }
}

export interface ApplyResult {
  /** Highest end LSN covered (what was stored in sync_wal_position). */
  lsn: bigint
  changelogRows: number
  ruleFailures: number
  /** Transactions skipped because sync_wal_position already covered them (replay after a crash before the ack). */
  skippedTransactions: number
  /** True when the batch was written as prepared ahead of time (pipelined), false when computed under the lock. */
  pipelined: boolean
  /** Milliseconds per phase: `prep` (computed under the lock; 0 when pipelined), `write`, `commit`. */
  timings: { prep: number; write: number; commit: number }
}

export interface ApplyOptions {
  /** The batch as computed ahead of time by {@link BatchApplier.prepare}; used only if still valid under the lock. */
  prepared?: PreparedBatch
  /**
   * Called once the position lock is held and the batch's edge state is final (before its rows are written): from
   * then on the next batch may be prepared on top of it ({@link BatchApplier.prepare}).
   */
  onReady?: (batch: PreparedBatch) => void
}

interface EdgeEntry {
  table: string
  id: string
  /** Edges as stored before this batch. Sets are never mutated in place (shared with the next batch's state). */
  readonly initial: ReadonlySet<string>
  /** Edges after the changes simulated so far. */
  cur: ReadonlySet<string>
}

/** The changelog/failures rows one batch produces, in order. Changelog rows go straight into COPY text. */
class BatchOutput {
  /** Changelog rows in COPY text format (bucket_id, table_name, record_id, operation), WAL order. */
  cl = ''
  clRows = 0
  /** Buckets that get changelog rows (for the commit-time NOTIFY). */
  readonly buckets = new Set<string>()
  readonly fTable: string[] = []
  readonly fRecord: string[] = []
  readonly fOp: number[] = []
  readonly fError: string[] = []
  readonly fPayload: string[] = []

  emit(bucket: string, table: string, id: string, op: ChangelogOp): void {
    this.cl += `${copyText(bucket)}\t${copyText(table)}\t${copyText(id)}\t${op}\n`
    this.clRows++
    this.buckets.add(bucket)
  }

  fail(c: RowChange, op: ChangelogOp, error: string): void {
    this.fTable.push(c.table.tableName)
    this.fRecord.push(c.id)
    this.fOp.push(op)
    this.fError.push(error)
    this.fPayload.push(JSON.stringify(c.row))
  }
}

/**
 * A batch whose buckets, changelog rows and edge changes are computed, ready to be written. When prepared ahead of
 * time it sits on top of `base`, the batch being written meanwhile: its edge state starts from base's final state.
 */
export class PreparedBatch {
  /** @internal */
  constructor(
    readonly txns: readonly WalTransaction[],
    /** @internal */ readonly out: BatchOutput,
    /** @internal */ readonly state: EdgeState,
    /** @internal */ readonly base: PreparedBatch | undefined,
  ) {}
}

/**
 * Turns committed source transactions into changelog rows and bucket edges, exactly once: everything, including the
 * new confirmed LSN, is written in ONE PostgreSQL transaction, and transactions at or below the stored LSN (read
 * under a row lock) are skipped. Per batch the number of statements is fixed, independent of the number of rows.
 *
 * Pipelining: while batch N is being written, batch N+1 may be computed ({@link prepare}) on another connection,
 * on top of N's final edge state (records N touches take their edges from N, all others from the database, which N
 * does not change for them). Batch N+1's transaction uses that work only if, under the position lock, the stored
 * LSN is exactly the one N committed and N was written from the very state N+1 was built on; otherwise (another
 * applier wrote in between, N was recomputed, N failed) it recomputes everything under the lock, as without
 * pipelining.
 */
export class BatchApplier {
  /** The last batch this applier committed and the LSN it stored. */
  #committed: { batch: PreparedBatch; lsn: bigint } | undefined

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

  /**
   * Computes a batch ahead of time on top of `base` (the batch being written: call this from its `onReady`).
   * Read-only towards the sync tables; returns undefined when the batch must be computed under the lock instead
   * (a TRUNCATE, whose "every edge of the table" cannot be layered on an uncommitted batch; or any error).
   */
  async prepare(txns: readonly WalTransaction[], base: PreparedBatch): Promise<PreparedBatch | undefined> {
    if (txns.some((t) => t.changes.some((c) => c.kind === 'truncate'))) return undefined
    let client: pg.PoolClient | undefined
    try {
      client = await this.pool.connect()
      // A transaction only for the bucket functions' savepoints; nothing is written to the sync tables here.
      await client.query('BEGIN')
      const state = new EdgeState(base.state)
      const out = new BatchOutput()
      await this.#compute(client, txns, state, out)
      await client.query('COMMIT')
      state.dropBase()
      client.release()
      return new PreparedBatch(txns, out, state, base)
    } catch (err) {
      this.logger?.debug({ err }, 'wal: preparing a batch ahead failed; it will be computed under the lock')
      if (client) {
        await client.query('ROLLBACK').catch(() => {})
        client.release(true)
      }
      return undefined
    }
  }

  async apply(txns: readonly WalTransaction[], options: ApplyOptions = {}): Promise<ApplyResult> {
    try {
      return await this.#attempt(txns, options, true)
    } catch (err) {
      // Edges are COPYed because the batch's edge state says they do not exist yet. Should something else have
      // created one meanwhile, redo the batch from the database under the lock, inserting edges with ON CONFLICT.
      if ((err as { code?: string }).code === '23505') {
        this.logger?.warn({ err }, 'wal: bucket edge already present; recomputing the batch under the lock')
        try {
          return await this.#attempt(txns, {}, false)
        } catch (err2) {
          throw new WalApplyError(`writing a WAL batch failed: ${(err2 as Error).message}`, { cause: err2 })
        }
      }
      throw new WalApplyError(`writing a WAL batch failed: ${(err as Error).message}`, { cause: err })
    }
  }

  async #attempt(txns: readonly WalTransaction[], options: ApplyOptions, copyEdges: boolean): Promise<ApplyResult> {
    const client = await this.pool.connect()
    let released = false
    const t0 = performance.now()
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
      const maxLsn = txns.reduce((m, t) => biggerLsn(m, t.endLsn), stored)
      const p = options.prepared
      const committed = this.#committed
      let batch: PreparedBatch
      let pipelined = false
      if (
        p &&
        p.txns === txns &&
        p.base !== undefined &&
        committed?.batch === p.base &&
        committed.lsn === stored &&
        txns.every((t) => t.endLsn > stored)
      ) {
        batch = p
        pipelined = true
      } else {
        const todo = txns.filter((t) => t.endLsn > stored)
        if (todo.length === 0) {
          await client.query('ROLLBACK')
          return {
            lsn: stored,
            changelogRows: 0,
            ruleFailures: 0,
            skippedTransactions: txns.length,
            pipelined: false,
            timings: { prep: Math.round(performance.now() - t0), write: 0, commit: 0 },
          }
        }
        const state = new EdgeState()
        const out = new BatchOutput()
        await this.#compute(client, todo, state, out)
        batch = new PreparedBatch(todo, out, state, undefined)
      }
      options.onReady?.(batch)
      const tw = performance.now()
      await this.#write(client, batch, maxLsn, copyEdges)
      const tc = performance.now()
      await client.query('COMMIT')
      this.#committed = { batch, lsn: maxLsn }
      return {
        lsn: maxLsn,
        changelogRows: batch.out.clRows,
        ruleFailures: batch.out.fOp.length,
        skippedTransactions: txns.length - batch.txns.length,
        pipelined,
        timings: {
          prep: Math.round(tw - t0),
          write: Math.round(tc - tw),
          commit: Math.round(performance.now() - tc),
        },
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      // A broken connection must not go back to the pool.
      client.release(true)
      released = true
      throw err
    } finally {
      if (!released) client.release()
    }
  }

  /** Computes the changelog rows and edge changes of `txns` (all to be applied) in WAL order. */
  async #compute(db: pg.ClientBase, txns: readonly WalTransaction[], state: EdgeState, out: BatchOutput) {
    await waitUntilVisible(db, txns)
    let segment: RowChange[] = []
    for (const t of txns) {
      for (const c of t.changes) {
        if (c.kind === 'truncate') {
          await this.#segment(db, segment, state, out)
          segment = []
          await this.#truncate(db, c.tables, state, out)
        } else segment.push(c)
      }
    }
    await this.#segment(db, segment, state, out)
  }

  /** Processes row changes without a TRUNCATE among them: batched reads, then an in-memory pass in WAL order. */
  async #segment(db: pg.ClientBase, changes: RowChange[], state: EdgeState, out: BatchOutput): Promise<void> {
    if (changes.length === 0) return
    await this.#fillMissing(db, changes)
    const seen = new Set<EdgeEntry>()
    const needFallback: boolean[] = []
    await state.load(db, changes)
    // Deletes only need computed buckets when the record may have no edges by then (PROTOCOL §3 J 122 fallback).
    // Skipping the ones certain to have edges avoids pointless parent lookups; a lookup that fails is only recorded
    // as a rule failure if the fallback is really used.
    for (const c of changes) {
      const e = state.get(c.table.tableName, c.id) as EdgeEntry
      needFallback.push(c.kind !== 'delete' || seen.has(e) || e.cur.size === 0)
      seen.add(e)
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
      await state.load(db, descendants)
      for (const d of descendants) {
        const a = byRoot.get(d.root)
        if (a) a.push(d)
        else byRoot.set(d.root, [d])
      }
    }

    for (const [i, c] of changes.entries()) {
      const e = state.get(c.table.tableName, c.id) as EdgeEntry
      const r = results[i]
      applyRowChange(c, r, e, out, isDeleted(c))
      const root = rootOf[i]
      if (root === undefined) continue
      const target = (roots[root] as RebucketRoot).buckets
      for (const d of byRoot.get(root) ?? []) {
        const de = state.get(d.table.tableName, d.id) as EdgeEntry
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

  /**
   * Writes the batch: changelog rows by COPY (in WAL order, so `seq` follows it), new edges by COPY (they do not
   * exist: the edge state says so, and only the position-lock holder writes edges), then one statement for removed
   * edges, rule failures and the new confirmed LSN. With `copyEdges` false, edges are inserted ON CONFLICT instead.
   */
  async #write(db: pg.ClientBase, batch: PreparedBatch, lsn: bigint, copyEdges: boolean): Promise<void> {
    const { out, state } = batch
    const del: [string[], string[], string[]] = [[], [], []]
    const ins: [string[], string[], string[]] = [[], [], []]
    let edgeCopy = ''
    for (const e of state.entries()) {
      if (e.initial === e.cur) continue
      for (const b of e.initial) if (!e.cur.has(b)) pushEdge(del, e, b)
      for (const b of e.cur) {
        if (e.initial.has(b)) continue
        if (copyEdges) edgeCopy += `${copyText(e.table)}\t${copyText(e.id)}\t${copyText(b)}\n`
        else pushEdge(ins, e, b)
      }
    }
    if (out.clRows > 0) {
      await copyFrom(
        db,
        'COPY sync_changelog (bucket_id, table_name, record_id, operation) FROM STDIN',
        Buffer.from(out.cl),
      )
    }
    if (edgeCopy.length > 0) {
      await copyFrom(db, 'COPY sync_bucket_edges (table_name, record_id, bucket_id) FROM STDIN', Buffer.from(edgeCopy))
    }
    // Deleted and inserted edge keys are disjoint (per record, a bucket is either removed or added), so the
    // data-modifying CTEs, which share one snapshot, never touch the same row twice. PostgreSQL runs every
    // data-modifying CTE even when the main statement does not reference it.
    await db.query(
      `WITH ed AS (
         DELETE FROM sync_bucket_edges e USING unnest($1::text[], $2::text[], $3::text[]) AS x(t, r, b)
          WHERE e.table_name = x.t AND e.record_id = x.r AND e.bucket_id = x.b
         RETURNING 1
       ), ei AS (
         INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id)
         SELECT * FROM unnest($4::text[], $5::text[], $6::text[])
         ON CONFLICT (table_name, record_id, bucket_id) DO UPDATE SET updated_at = now()
         RETURNING 1
       ), rf AS (
         INSERT INTO sync_rule_failures (table_name, record_id, operation, error_text, payload)
         SELECT * FROM unnest($7::text[], $8::text[], $9::int2[], $10::text[], $11::jsonb[])
         RETURNING 1
       )
       INSERT INTO sync_wal_position (slot_name, confirmed_lsn, updated_at)
       VALUES ($12, $13::bigint, now())
       ON CONFLICT (slot_name) DO UPDATE
         SET confirmed_lsn = GREATEST(sync_wal_position.confirmed_lsn, EXCLUDED.confirmed_lsn), updated_at = now()`,
      [...del, ...ins, out.fTable, out.fRecord, out.fOp, out.fError, out.fPayload, this.slotName, lsn.toString()],
    )
    if (out.clRows > 0) {
      // Delivered to every LISTENing instance when (and only if) this transaction commits. The head is the last seq
      // this session drew: only the position-lock holder writes the changelog, so it is the new head. A listener that
      // stops reading lets the notification queue fill; past half full we skip the NOTIFY (instances then find the
      // batch by their fallback poll) rather than ever fail the capture on a full queue.
      await db.query(
        `SELECT CASE WHEN pg_notification_queue_usage() < 0.5 THEN pg_notify('${CHANGELOG_CHANNEL}',
           '{"seq":' || currval(pg_get_serial_sequence('sync_changelog', 'seq')) || ',"b":' || $1 || '}') END`,
        [notifyBuckets(out.buckets)],
      )
    }
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
  if (r.buckets.length === e.cur.size && r.buckets.every((b) => e.cur.has(b))) {
    // Same buckets (the common update): op 2 everywhere, edges unchanged (no new set, no edge write).
    for (const b of r.buckets) out.emit(b, t, c.id, OP_UPDATE)
    return
  }
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

const NO_EDGES: ReadonlySet<string> = new Set()

/**
 * In-memory view of sync_bucket_edges for the records a batch touches, loaded with batched queries. A state built
 * on a `base` (the batch being written meanwhile) takes the records that batch touches from its final state.
 */
class EdgeState {
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

  /** Loads the edges of records not yet in memory (one query per table). */
  async load(db: pg.ClientBase, records: Iterable<{ table: ResolvedTable; id: string }>): Promise<void> {
    const idsByTable = new Map<string, string[]>()
    let t = ''
    let m: Map<string, EdgeEntry> | undefined
    let full = false
    let base: Map<string, EdgeEntry> | undefined
    for (const r of records) {
      if (r.table.tableName !== t || !m) {
        t = r.table.tableName
        m = this.#table(t)
        full = this.#full.has(t)
        base = this.#base ? this.#base.#tables.get(t) : undefined
      }
      const id = r.id
      if (m.has(id)) continue
      const b = base?.get(id)
      const known = b ? b.cur : full ? NO_EDGES : undefined
      // Placeholder until the query below answers; the id is then also de-duplicated for it.
      m.set(id, { table: t, id, initial: known ?? NO_EDGES, cur: known ?? NO_EDGES })
      if (known) continue
      const a = idsByTable.get(t)
      if (a) a.push(id)
      else idsByTable.set(t, [id])
    }
    // Per table `record_id = ANY(...)`: an index scan on the edges PK, much cheaper than a join on unnest() for
    // thousands of keys. Batches touch few tables, so this is a handful of statements at most.
    for (const [table, ids] of idsByTable) {
      const res = await db.query<{ r: string; b: string }>(
        'SELECT record_id AS r, bucket_id AS b FROM sync_bucket_edges WHERE table_name = $1 AND record_id = ANY($2::text[])',
        [table, ids],
      )
      const tm = this.#table(table)
      const found = new Map<string, Set<string>>()
      for (const row of res.rows) {
        const a = found.get(row.r)
        if (a) a.add(row.b)
        else found.set(row.r, new Set([row.b]))
      }
      for (const [id, bs] of found) tm.set(id, { table, id, initial: bs, cur: bs })
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
