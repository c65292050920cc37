import { type PushResult, stringifyJsonLossless } from '@synchro/protocol'
import type pg from 'pg'
import type { Registry } from '../registry/registry.js'
import { pushBatchAttributes } from '../telemetry/attributes.js'
import { withSpan } from '../telemetry/tracing.js'
import type { Logger } from '../util/log.js'
import { trimRfc3339 } from '../util/time.js'
import { type FinalCommit, writeAndCommit } from './commit.js'
import { serverSetVersion } from './echo.js'
import { classifyWriteError, FORBIDDEN, retryableFailure, sqlState, type WriteKind } from './errors.js'
import type { PushResults } from './results.js'
import { resyncPrepared, savepointAndRun } from './roundtrip.js'
import { type RowStates, rowKey, runStatement } from './rows.js'
import { deleteStatement, insertStatement, type Statement, updateStatement } from './sql.js'
import type { Item, TableInfo } from './validate.js'

export interface Write {
  item: Item
  /** The JSON object given to jsonb_populate_record (id included). */
  row: { [column: string]: unknown }
  /** Update / resurrection of an unlocked row: the stamp the decision was taken on (written only if unchanged). */
  guard: string | null
  /** Decided again after its row changed under it: a second miss is answered as retryable. */
  again: boolean
}

/** Consecutive writes of one table, kind and column set: one statement. */
interface Group {
  info: TableInfo
  kind: WriteKind
  cols: string[]
  colSet: ReadonlySet<string>
  writes: Write[]
}

/** Whether a write of `item` with `entries` belongs in batch `g`: same table, kind and column set (per record: no sort). */
function fits(g: Group, item: Item, kind: WriteKind, entries: readonly [string, unknown][]): boolean {
  if (g.info !== item.info || g.kind !== kind) return false
  const id = item.info.t.idColumn
  let n = 0
  for (const [c] of entries) {
    if (kind !== 'create' && c === id) continue
    if (!g.colSet.has(c)) return false
    n++
  }
  return n === g.cols.length
}

interface WriteRow {
  n: number
  ok?: boolean
  u: string | null
  d?: string | null
  /** The stored row as JSON text (creates and updates). */
  data?: string | null
}

/**
 * Rows per write statement: a 1000-record push of large rows as one statement can run for seconds without a round
 * trip completing, which the request deadline (progress-based) cannot tell from a stalled database.
 */
const MAX_STATEMENT_ROWS = 200

const SAVEPOINT = 'SAVEPOINT synchro_push'
const ROLLBACK_TO = 'ROLLBACK TO SAVEPOINT synchro_push'

/** Writes that matched nothing but may succeed when decided again on their row's newest version. */
export type Recheck = (info: TableInfo, writes: readonly Write[]) => Promise<void>

/**
 * Collects consecutive writes of the same shape and runs them as one statement under a savepoint. When a
 * statement fails, its batch is rolled back to the savepoint and replayed one record per savepoint, so one bad
 * record never sinks the others (Decision 3).
 */
export class BatchWriter {
  #pending: Group | undefined
  readonly #pendingKeys = new Set<string>()

  constructor(
    readonly db: pg.PoolClient,
    readonly registry: Registry,
    readonly logger: Logger,
    /** Rows were pre-loaded without locks: a write that matched nothing may be decided again. */
    readonly optimistic: boolean,
    readonly rows: RowStates,
    readonly results: PushResults,
    readonly recheck: Recheck,
    /** The request may end with its last write (commit.ts): only when no hook runs after the writes. */
    readonly commit?: FinalCommit,
  ) {}

  /** Whether the last flush committed the request transaction (nothing may run in it any more). */
  committed = false

  /** Whether a write of this row waits in the unflushed batch. */
  pending(k: string): boolean {
    return this.#pendingKeys.has(k)
  }

  /** Adds a write to the batch; a promise only when the batch had to be written first (another shape, or full). */
  enqueue(
    item: Item,
    kind: WriteKind,
    entries: [string, unknown][],
    guard: string | null,
    again: boolean,
  ): void | Promise<void> {
    // Only consecutive records share a statement: a later record may depend on an earlier one (a child
    // created under a parent created just before), so request order is kept between statements.
    if (
      this.#pending &&
      (!fits(this.#pending, item, kind, entries) || this.#pending.writes.length >= MAX_STATEMENT_ROWS)
    ) {
      return this.flush().then(() => this.#add(item, kind, entries, guard, again))
    }
    this.#add(item, kind, entries, guard, again)
  }

  #add(item: Item, kind: WriteKind, entries: [string, unknown][], guard: string | null, again: boolean): void {
    if (!this.#pending) {
      const t = item.info.t
      const cols = entries
        .map(([c]) => c)
        .filter((c) => kind === 'create' || c !== t.idColumn)
        .sort()
      this.#pending = { info: item.info, kind, cols, colSet: new Set(cols), writes: [] }
    }
    // fromEntries defines own properties, so a key like "__proto__" cannot touch the prototype.
    this.#pending.writes.push({ item, row: Object.fromEntries(entries), guard, again })
    this.#pendingKeys.add(rowKey(item.info, item.key))
  }

  /** Writes the pending batch; `last`: nothing follows it in the request (it may commit, see commit.ts). */
  async flush(last = false): Promise<void> {
    const g = this.#pending
    if (!g) return
    this.#pending = undefined
    for (const k of this.#pendingKeys) this.rows.markDirty(k)
    this.#pendingKeys.clear()
    if (last && (await this.#commitWith(g))) return
    const stmt = statementOf(this.registry, g)
    // Records to decide again after this statement: their row existed or changed unseen (see #record).
    const recheck: Write[] = []
    try {
      const rows = await withSpan(
        'synchro.push.batch',
        pushBatchAttributes(g.info.t.tableName, g.kind, g.writes.length),
        () => savepointAndRun<WriteRow>(this.db, SAVEPOINT, stmt, paramsOf(g, g.writes)),
      )
      answer(this, g, g.writes, rows, recheck)
    } catch (err) {
      await this.db.query(ROLLBACK_TO)
      await resyncPrepared(this.db, stmt)
      // 26000: the connection lost the prepared statement (DEALLOCATE by someone else): not the record's fault.
      if (g.writes.length === 1 && sqlState(err) !== '26000') this.#failed(g, g.writes[0] as Write, err)
      else {
        // The batch failed as a whole: replay it one record per savepoint to find the bad ones.
        for (const w of g.writes) {
          await this.db.query(SAVEPOINT)
          try {
            const { rows } = await runStatement<WriteRow>(this.db, stmt, paramsOf(g, [w]))
            answer(this, g, [w], rows, recheck)
          } catch (err) {
            await this.db.query(ROLLBACK_TO)
            this.#failed(g, w, err)
          }
        }
      }
    }
    if (recheck.length > 0) await this.recheck(g.info, recheck)
  }

  /**
   * The batch in its strict form with COMMIT (commit.ts), when this writer may commit and the batch was decided on
   * unlocked stamps only (a write decided a second time is never speculative). False: flush it as usual.
   */
  async #commitWith(g: Group): Promise<boolean> {
    if (!this.commit || !this.optimistic || g.writes.some((w) => w.again)) return false
    const [json, ...arrays] = paramsOf(g, g.writes) as [string, ...(string | null)[][]]
    const rows = await withSpan(
      'synchro.push.batch',
      pushBatchAttributes(g.info.t.tableName, g.kind, g.writes.length),
      () =>
        writeAndCommit<WriteRow>(
          this.db,
          this.commit as FinalCommit,
          statementOf(this.registry, g, true),
          json,
          arrays,
        ),
    )
    this.committed = true
    const recheck: Write[] = []
    answer(this, g, g.writes, rows, recheck)
    // A strict statement answers every row (or fails): nothing can be left to decide again.
    for (const w of recheck) this.results.fail(w.item, retryableFailure(g.kind))
    return true
  }

  #failed(g: Group, w: Write, err: unknown): void {
    const failure = classifyWriteError(err, g.kind)
    this.logger.warn(
      { table: g.info.t.tableName, op: g.kind, code: sqlState(err), reason: failure.reasonCode },
      'push record rejected',
    )
    this.results.fail(w.item, failure)
  }
}

/**
 * Turns the rows a write statement returned (numbered from 1 in input order) into results. A write that matched
 * nothing goes to `recheck` when its row may simply have been unknown or changed: a create over an existing id
 * (not pre-loaded, invisible, or committed concurrently), a guarded write whose stamp moved, or any write on a
 * row that was not locked. A write decided on a locked row, or already decided twice, cannot be helped: retryable.
 */
function answer(
  writer: { results: PushResults; optimistic: boolean },
  g: Group,
  writes: readonly Write[],
  rows: readonly WriteRow[],
  recheck: Write[],
): void {
  const byN = new Map<number, WriteRow>()
  for (const r of rows) byN.set(r.n, r)
  for (const [i, w] of writes.entries()) {
    const r = byN.get(i + 1)
    if (r && r.u !== null) {
      const extra: Partial<PushResult> = { server_updated_at: trimRfc3339(r.u) }
      if (g.kind === 'delete' && r.d) extra.server_deleted_at = trimRfc3339(r.d)
      const sv = r.data ? serverSetVersion(w.item, r.data, r.u) : undefined
      if (sv) extra.server_version = sv
      writer.results.applied(w.item, extra)
    } else if (g.kind === 'create' && r?.ok === false) {
      writer.results.fail(w.item, FORBIDDEN)
    } else if (!w.again && (g.kind === 'create' || writer.optimistic)) {
      recheck.push(w)
    } else {
      writer.results.fail(w.item, retryableFailure(g.kind))
    }
  }
}

/** The write statement of a batch (sql.ts); `strict` for the one that commits (commit.ts). */
function statementOf(reg: Registry, g: Group, strict = false): Statement {
  switch (g.kind) {
    case 'create':
      return insertStatement(reg, g.info, g.cols, strict)
    case 'update':
      return updateStatement(reg, g.info, g.cols, false, strict)
    case 'resurrect':
      return updateStatement(reg, g.info, g.cols, true, strict)
    case 'delete':
      return deleteStatement(reg, g.info.t, g.info.idKind, strict)
  }
}

/** The parameters of a write statement for `writes` of batch `g` (see sql.ts). */
function paramsOf(g: Group, writes: readonly Write[]): unknown[] {
  const values: unknown[] = [stringifyJsonLossless(writes.map((w) => w.row))]
  if (g.kind === 'create') return values
  values.push(writes.map((w) => w.item.key))
  if (g.kind !== 'delete') values.push(writes.map((w) => w.guard))
  return values
}
