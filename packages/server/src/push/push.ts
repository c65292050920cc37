import {
  MAX_PUSH_CHANGES,
  type PushRecord,
  type PushRequest,
  type PushResponse,
  type PushResult,
  type SyncRecord,
  stringifyJsonLossless,
  WIRE_ERRORS,
  ZERO_TIME,
} from '@synchro/protocol'
import type pg from 'pg'
import type { ConflictDecision, ConflictInput } from '../conflict/types.js'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import { BadRequestError } from '../errors.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { nestedDeeperThan } from '../limits/limits.js'
import type { ResolvedTable } from '../registry/registry.js'
import { inRequest } from '../request/open.js'
import type { SchemaContract } from '../schema/contract.js'
import { pushBatchAttributes } from '../telemetry/attributes.js'
import { withSpan } from '../telemetry/tracing.js'
import { EXACT_JSON_TYPES } from '../util/json.js'
import { nowRfc3339, trimRfc3339 } from '../util/time.js'
import {
  classifyWriteError,
  FORBIDDEN,
  INVALID_DATA,
  type RecordFailure,
  retryableFailure,
  sqlState,
  type WriteKind,
} from './errors.js'
import { canonicalId, type IdKind, idKindOf } from './ids.js'
import {
  deleteStatement,
  insertStatement,
  lockStatement,
  type Statement,
  stampStatement,
  updateStatement,
  visibilityStatement,
} from './sql.js'

/**
 * POST /sync/push (PROTOCOL.md §1.5, §3 F–H, Decisions 2–4, 6, 14, 18, 23, 27–29).
 *
 * One transaction per request with `app.user_id` set. Records are processed in request order, but written in
 * batches: the state of each table's rows is pre-loaded with one query, decisions (ownership, existence, conflict
 * resolution) are taken in memory, and consecutive writes of the same shape run as one statement under a
 * savepoint. With a stamps-only resolver the pre-load reads stamps without locking and the writes are guarded by
 * the stamp they were decided on (see `PushRun`). When a statement fails, its batch is rolled back to the
 * savepoint and replayed one record per savepoint, so one bad record never sinks the others (Decision 3) while the
 * common case costs one statement per batch instead of three round trips per record.
 */
export async function push(
  ctx: EngineContext,
  userId: string,
  req: PushRequest,
  deadline?: RequestDeadline,
): Promise<PushResponse> {
  const changes = req.changes ?? []
  if (changes.length > MAX_PUSH_CHANGES)
    throw new BadRequestError(WIRE_ERRORS.too_many_changes.message, 'too_many_changes')
  // Schema pair (409), client row (404, stale → 403) and the push mark on it: the statement opening the transaction.
  const { contract, results } = await inRequest(ctx, userId, req, { access: 'push', deadline }, async (tx) => {
    if (changes.length === 0) return { contract: tx.contract, results: [] }
    const results = await new PushRun(ctx, tx.db, tx.contract, userId).run(changes)
    const accepted = results.filter((r) => r.status === 'applied')
    // Inside the transaction: a throwing hook rolls back every record (HTTP 500).
    if (accepted.length > 0 && ctx.hooks.onPushAccepted) {
      await ctx.hooks.onPushAccepted({ userId, clientId: req.client_id, accepted, db: tx.db })
    }
    return { contract: tx.contract, results }
  })
  return {
    accepted: results.filter((r) => r.status === 'applied'),
    rejected: results.filter((r) => r.status !== 'applied'),
    checkpoint: 0,
    server_time: nowRfc3339(),
    schema_version: contract.version,
    schema_hash: contract.hash,
  }
}

/** What push needs to know about one registered table under the current contract. */
interface TableInfo {
  t: ResolvedTable
  idKind: IdKind
  idType: string
  /** Synced catalog columns: what `server_version.data` may contain (Decision 14) and what clients may send. */
  synced: ReadonlySet<string>
  /** Keys of `data` written on create (synced, not protected except id / owner / parent FK). */
  createCols: ReadonlySet<string>
  /** Keys of `data` written on update and resurrection (synced, not protected). */
  updateCols: ReadonlySet<string>
}

const infoCache = new WeakMap<SchemaContract, Map<string, TableInfo>>()

function tableInfo(contract: SchemaContract, t: ResolvedTable): TableInfo {
  let byTable = infoCache.get(contract)
  if (!byTable) {
    byTable = new Map()
    infoCache.set(contract, byTable)
  }
  let info = byTable.get(t.tableName)
  if (info) return info
  const columns = contract.columns.get(t.tableName) ?? []
  const synced = new Set(columns.map((c) => c.name))
  const idType = columns.find((c) => c.name === t.idColumn)?.db_type ?? 'text'
  const createCols = new Set<string>()
  const updateCols = new Set<string>()
  for (const c of synced) {
    if (!t.protectedSet.has(c)) {
      createCols.add(c)
      updateCols.add(c)
    } else if (t.insertAllowedProtected.has(c)) {
      createCols.add(c)
    }
  }
  info = { t, idKind: idKindOf(idType), idType, synced, createCols, updateCols }
  byTable.set(t.tableName, info)
  return info
}

/**
 * A stored row as the pre-load sees it. Rows the caller may write carry their stamps and, when read with
 * lockStatement (locked for the rest of the transaction), their data; rows read with stampStatement carry no data
 * and no lock. Rows that exist but are not writable only say whether the caller may read them.
 */
type RowState =
  | {
      writable: true
      readable: true
      id: string
      updatedAt: string
      deletedAt: string | null
      /** Synced columns of the row; undefined when only the stamps were read (then not locked either). */
      data: { [column: string]: unknown } | undefined
    }
  | { writable: false; readable: boolean }

/** A row the caller may write. */
type OwnRow = Extract<RowState, { writable: true }>
/** A row the caller may write, loaded with its data and locked. */
type FullRow = OwnRow & { data: { [column: string]: unknown } }

function isFull(row: OwnRow): row is FullRow {
  return row.data !== undefined
}

interface LockRow {
  id: string
  u: string
  d: string | null
  /** Absent from stampStatement rows. */
  data?: { [column: string]: unknown }
}

/** A record that passed the table / policy / operation / data checks. */
interface Item {
  index: number
  rec: PushRecord
  op: 'create' | 'update' | 'delete'
  info: TableInfo
  /** Canonical id (PostgreSQL's rendering). */
  key: string
  data: { [column: string]: unknown } | undefined
}

interface Write {
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
  sig: string
  writes: Write[]
}

/**
 * Rows per write statement: a 1000-record push of large rows as one statement can run for seconds without a round
 * trip completing, which the request deadline (progress-based) cannot tell from a stalled database.
 */
const MAX_STATEMENT_ROWS = 200

const SAVEPOINT = 'SAVEPOINT synchro_push'
const ROLLBACK_TO = 'ROLLBACK TO SAVEPOINT synchro_push'

function isObject(v: unknown): v is { [k: string]: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * One request. Two ways to pre-load a table's rows:
 *
 * * locked (lockStatement: `FOR UPDATE` + `to_jsonb`) for every id of the request — used when the resolver may read
 *   `serverData` or an `onConflict` hook must see it;
 * * optimistic (ConflictResolver.stampsOnly and no hook): creates are not pre-loaded at all (inserted with
 *   `ON CONFLICT DO NOTHING`, the ids that existed are loaded locked and decided then); update / delete ids get
 *   their stamps only (stampStatement), and the few records whose outcome needs the row (conflicts:
 *   `server_version`) are loaded locked in one more query. Writes decided on an unlocked stamp carry it as a guard;
 *   a row that changed in between (a concurrent push: §3 G 103) is not written, but loaded locked and decided again
 *   right after its statement — the same outcome the locked path gives, without locking every row.
 */
class PushRun {
  readonly #results: (PushResult | undefined)[] = []
  /** Per table, per canonical id: the row state, or absent when no such row is visible. */
  readonly #state = new Map<string, Map<string, RowState>>()
  #pending: Group | undefined
  readonly #pendingKeys = new Set<string>()
  /** Rows written earlier in this request: their state must be re-read before another record touches them. */
  readonly #dirty = new Set<string>()
  /** Records decided a second time (#decideAgain). */
  readonly #again = new Set<Item>()
  readonly #optimistic: boolean

  constructor(
    readonly ctx: EngineContext,
    readonly db: pg.PoolClient,
    readonly contract: SchemaContract,
    readonly userId: string,
  ) {
    this.#optimistic = ctx.conflictResolver.stampsOnly === true && !ctx.hooks.onConflict
  }

  async run(changes: readonly PushRecord[]): Promise<PushResult[]> {
    const items: Item[] = []
    for (const [index, rec] of changes.entries()) {
      const item = this.#check(index, rec)
      if (item) items.push(item)
    }
    await this.#preload(items)
    for (const item of items) await this.#decide(item)
    await this.#flush()
    return this.#results.map((r, i) => r ?? this.#result(changes[i] as PushRecord, failureInternal()))
  }

  /** Table → pushability → operation → data → id (§3 F 73, Decision 4). */
  #check(index: number, rec: PushRecord): Item | undefined {
    const reject = (f: RecordFailure) => {
      this.#results[index] = this.#result(rec, f)
      return undefined
    }
    const t = this.ctx.registry.get(rec.table_name)
    if (!t) {
      return reject({
        status: 'rejected_terminal',
        reasonCode: 'table_not_registered',
        message: 'table not registered for sync',
      })
    }
    if (t.pushPolicy !== 'owner_only') {
      return reject({ status: 'rejected_terminal', reasonCode: 'table_read_only', message: 'table is read-only' })
    }
    const op = rec.operation
    if (op !== 'create' && op !== 'update' && op !== 'delete') {
      return reject({
        status: 'rejected_terminal',
        reasonCode: 'invalid_operation',
        message: `unknown operation: ${op}`,
      })
    }
    if (op !== 'delete' && !isObject(rec.data)) return reject(INVALID_DATA)
    // Bounded nesting: deeper values could be stored but not rendered back (stack overflow serialising a page).
    if (op !== 'delete' && nestedDeeperThan(rec.data, this.ctx.limits.maxJsonDepth)) {
      return reject({ ...INVALID_DATA, message: 'data nested too deeply' })
    }
    const info = tableInfo(this.contract, t)
    const key = canonicalId(rec.id, info.idKind, info.idType)
    if (key === undefined) return reject({ ...INVALID_DATA, message: 'invalid record id' })
    return { index, rec, op, info, key, data: isObject(rec.data) ? rec.data : undefined }
  }

  #result(rec: PushRecord, f: RecordFailure, extra: Partial<PushResult> = {}): PushResult {
    return {
      id: rec.id,
      table_name: rec.table_name,
      operation: rec.operation,
      status: f.status,
      reason_code: f.reasonCode,
      message: f.message,
      ...extra,
    }
  }

  #applied(item: Item, extra: Partial<PushResult> = {}): void {
    this.#results[item.index] = {
      id: item.rec.id,
      table_name: item.rec.table_name,
      operation: item.rec.operation,
      status: 'applied',
      ...extra,
    }
  }

  #fail(item: Item, f: RecordFailure, extra: Partial<PushResult> = {}): void {
    this.#results[item.index] = this.#result(item.rec, f, extra)
  }

  /**
   * Locked: one locking query per table for every id the request touches. Optimistic: one stamp query per table
   * for the update / delete ids, then one locking query per table for the rows whose outcome needs their data.
   * Either way a second, data-free query runs only for the update/delete ids that are not the caller's (to tell a
   * global row from an invisible one).
   */
  async #preload(items: readonly Item[]): Promise<void> {
    const byTable = new Map<string, { info: TableInfo; keys: Set<string>; probe: Set<string> }>()
    for (const it of items) {
      const e = byTable.get(it.info.t.tableName) ?? { info: it.info, keys: new Set(), probe: new Set() }
      e.keys.add(it.key)
      if (it.op !== 'create') e.probe.add(it.key)
      byTable.set(it.info.t.tableName, e)
    }
    if (!this.#optimistic) {
      for (const { info, keys, probe } of byTable.values()) await this.#load(info, [...keys], probe)
      return
    }
    for (const { info, probe } of byTable.values()) {
      if (probe.size > 0) await this.#load(info, [...probe], probe, false)
    }
    // Records whose outcome needs the stored row: only the first record of each row (later ones re-read it).
    const full = new Map<string, { info: TableInfo; keys: string[] }>()
    const seen = new Set<string>()
    for (const it of items) {
      const k = `${it.info.t.tableName}\u0000${it.key}`
      if (seen.has(k)) continue
      seen.add(k)
      const row = this.#state.get(it.info.t.tableName)?.get(it.key)
      if (!row?.writable || !(await this.#needsRow(it, row))) continue
      const e = full.get(it.info.t.tableName) ?? { info: it.info, keys: [] }
      e.keys.push(it.key)
      full.set(it.info.t.tableName, e)
    }
    for (const { info, keys } of full.values()) await this.#load(info, keys)
  }

  /**
   * Whether the outcome of `item` on a writable row read without data will need that row (a conflict answer
   * carries it as `server_version`). Only called with a stamps-only resolver: calling it here is free of effects.
   */
  async #needsRow(item: Item, row: OwnRow): Promise<boolean> {
    if (isFull(row) || item.op === 'delete') return false
    if (item.op === 'create' && row.deletedAt === null) return true
    if (item.op === 'update' && row.deletedAt !== null) return true
    try {
      const decision = await this.ctx.conflictResolver.resolve(this.#conflictInput(item, row, item.op))
      return decision.winner === 'server'
    } catch {
      return false // #resolve reports it
    }
  }

  /**
   * (Re)loads the state of `keys`: locked with data (lockStatement) or, with `locked` false, stamps only. Only keys
   * in `probe` that turn out not writable are probed for visibility; a create needs no probe: inserting over an
   * existing id fails quietly (ON CONFLICT DO NOTHING) and is rechecked.
   */
  async #load(
    info: TableInfo,
    keys: readonly string[],
    probe: ReadonlySet<string> = new Set(keys),
    locked = true,
  ): Promise<void> {
    const stmt = (locked ? lockStatement : stampStatement)(this.ctx.registry, info.t, info.idKind)
    const { rows } = await this.#query<LockRow>(stmt, [keys])
    let state = this.#state.get(info.t.tableName)
    if (!state) {
      state = new Map()
      this.#state.set(info.t.tableName, state)
    }
    for (const k of keys) state.delete(k)
    for (const r of rows) {
      state.set(r.id, {
        writable: true,
        readable: true,
        id: r.id,
        updatedAt: r.u,
        deletedAt: r.d,
        data: r.data === undefined ? undefined : this.#syncedData(info, r.data),
      })
    }
    const missing = keys.filter((k) => probe.has(k) && !state.has(k))
    if (missing.length === 0) return
    const visible = await this.#query<{ id: string; r: boolean }>(
      visibilityStatement(this.ctx.registry, info.t, info.idKind),
      [missing],
    )
    for (const v of visible.rows) state.set(v.id, { writable: false, readable: v.r })
  }

  #query<R extends pg.QueryResultRow>(stmt: Statement, values: unknown[]): Promise<pg.QueryResult<R>> {
    return this.db.query<R>({ name: stmt.name, text: stmt.text, values, types: EXACT_JSON_TYPES })
  }

  /** to_jsonb(row) restricted to the synced columns (Decision 14). */
  #syncedData(info: TableInfo, data: { [column: string]: unknown }): { [column: string]: unknown } {
    if (!info.t.syncColumns) return data
    return Object.fromEntries(Object.entries(data).filter(([k]) => info.synced.has(k)))
  }

  #serverVersion(info: TableInfo, row: FullRow, withDeleted: boolean): SyncRecord {
    const rec: SyncRecord = {
      id: row.id,
      table_name: info.t.tableName,
      data: row.data,
      updated_at: trimRfc3339(row.updatedAt),
    }
    if (withDeleted && row.deletedAt !== null) rec.deleted_at = trimRfc3339(row.deletedAt)
    return rec
  }

  async #decide(item: Item): Promise<void> {
    const { info, key } = item
    const k = `${info.t.tableName}\u0000${key}`
    // A second record for a row in the unflushed batch: write the batch first so this one sees its effect.
    if (this.#pendingKeys.has(k)) await this.#flush()
    if (this.#dirty.has(k)) {
      await this.#load(info, [key])
      this.#dirty.delete(k)
    }
    return this.#dispatch(item)
  }

  #dispatch(item: Item): Promise<void> {
    const row = this.#state.get(item.info.t.tableName)?.get(item.key)
    switch (item.op) {
      case 'create':
        return this.#create(item, row)
      case 'update':
        return this.#update(item, row)
      case 'delete':
        return this.#delete(item, row)
    }
  }

  /** The outcome needs the row's data but only its stamps were read: load it locked, decide again on it. */
  async #reload(item: Item): Promise<void> {
    await this.#load(item.info, [item.key])
    return this.#dispatch(item)
  }

  async #create(item: Item, row: RowState | undefined): Promise<void> {
    const { info } = item
    const t = info.t
    if (!row) {
      // A brand-new id. Owner is always the caller; the record id wins over data.id (§3 F 75).
      const entries: [string, unknown][] = []
      for (const [c, v] of Object.entries(item.data ?? {})) {
        if (info.createCols.has(c) && c !== t.idColumn && c !== t.ownerColumn) entries.push([c, v])
      }
      entries.push([t.idColumn, item.key])
      if (t.ownerColumn) entries.push([t.ownerColumn, this.userId])
      return this.#enqueue(item, 'create', entries)
    }
    // Someone else's row (readable or not) or a global row: never written, nothing about it returned.
    if (!row.writable) return this.#fail(item, FORBIDDEN)
    if (row.deletedAt === null) {
      if (!isFull(row)) return this.#reload(item)
      return this.#fail(
        item,
        { status: 'conflict', reasonCode: 'record_exists', message: 'record already exists' },
        { server_version: this.#serverVersion(info, row, false) },
      )
    }
    const decision = await this.#resolve(item, row, 'create')
    if (!decision) return this.#fail(item, failureInternal())
    if (decision.winner === 'server') return this.#serverWon(item, row, decision)
    return this.#enqueue(item, 'resurrect', this.#updateEntries(item), row)
  }

  async #update(item: Item, row: RowState | undefined): Promise<void> {
    const { info } = item
    // Decision 6: another user's row (or a global one) → forbidden; only a row that does not exist is not found.
    if (!row) {
      return this.#fail(item, {
        status: 'rejected_terminal',
        reasonCode: 'record_not_found',
        message: 'record not found',
      })
    }
    if (!row.writable) return this.#fail(item, FORBIDDEN)
    if (row.deletedAt !== null) {
      if (!isFull(row)) return this.#reload(item)
      return this.#fail(
        item,
        { status: 'conflict', reasonCode: 'record_deleted', message: 'record is deleted' },
        { server_version: this.#serverVersion(info, row, true) },
      )
    }
    const decision = await this.#resolve(item, row, 'update')
    if (!decision) return this.#fail(item, failureInternal())
    if (decision.winner === 'server') return this.#serverWon(item, row, decision)
    const entries = this.#updateEntries(item)
    // Decision 29: nothing writable → applied, updated_at untouched, no server_updated_at.
    if (entries.length === 1) return this.#applied(item)
    return this.#enqueue(item, 'update', entries, row)
  }

  async #delete(item: Item, row: RowState | undefined): Promise<void> {
    if (!row) {
      return this.#fail(item, {
        status: 'rejected_terminal',
        reasonCode: 'record_not_found',
        message: 'record not found or not accessible',
      })
    }
    if (!row.writable) return this.#fail(item, FORBIDDEN)
    if (row.deletedAt !== null) {
      this.#results[item.index] = {
        id: item.rec.id,
        table_name: item.rec.table_name,
        operation: item.rec.operation,
        status: 'applied',
        reason_code: 'already_deleted',
        message: 'record already deleted',
      }
      return
    }
    return this.#enqueue(item, 'delete', [[item.info.t.idColumn, item.key]], row)
  }

  /** Writable keys of an update / resurrection plus the id (the join key, never assigned). */
  #updateEntries(item: Item): [string, unknown][] {
    const entries: [string, unknown][] = []
    for (const [c, v] of Object.entries(item.data ?? {})) {
      if (item.info.updateCols.has(c)) entries.push([c, v])
    }
    entries.push([item.info.t.idColumn, item.key])
    return entries
  }

  #conflictInput(item: Item, row: OwnRow, operation: 'create' | 'update'): ConflictInput {
    return {
      table: item.info.t.tableName,
      recordId: item.rec.id,
      operation,
      userId: this.userId,
      clientUpdatedAt: item.rec.client_updated_at ?? ZERO_TIME,
      baseUpdatedAt: item.rec.base_updated_at,
      serverUpdatedAt: row.updatedAt,
      clientData: item.data ?? {},
      // Without data only with a stamps-only resolver, which does not read it.
      serverData: row.data ?? {},
    }
  }

  /** Runs the resolver; undefined when a custom resolver throws (that record → internal_error, retryable). */
  async #resolve(item: Item, row: OwnRow, operation: 'create' | 'update'): Promise<ConflictDecision | undefined> {
    const input = this.#conflictInput(item, row, operation)
    let decision: ConflictDecision
    try {
      decision = await this.ctx.conflictResolver.resolve(input)
    } catch (err) {
      this.ctx.logger.warn({ table: input.table, code: sqlState(err) }, 'conflict resolver failed')
      return undefined
    }
    try {
      emitHook(this.ctx, 'onConflict', () => ({ input, decision }))
    } catch (err) {
      // Informational hook: its failure must not change the outcome.
      this.ctx.logger.warn({ table: input.table, code: sqlState(err) }, 'onConflict hook failed')
    }
    return decision
  }

  async #serverWon(item: Item, row: OwnRow, decision: ConflictDecision): Promise<void> {
    // Decided on an unlocked stamp: load the row (its data is the answer) and decide on the newest version.
    if (!isFull(row)) return this.#reload(item)
    this.#fail(
      item,
      { status: 'conflict', reasonCode: 'server_won_conflict', message: decision.reason },
      { server_version: this.#serverVersion(item.info, row, false) },
    )
  }

  /** `row`: the state the write was decided on (undefined for a create); unlocked → the write is guarded. */
  async #enqueue(item: Item, kind: WriteKind, entries: [string, unknown][], row?: OwnRow): Promise<void> {
    const t = item.info.t
    const cols = entries
      .map(([c]) => c)
      .filter((c) => kind === 'create' || c !== t.idColumn)
      .sort()
    const sig = `${t.tableName}\u0000${kind}\u0000${cols.join('\u0000')}`
    // Only consecutive records share a statement: a later record may depend on an earlier one (a child
    // created under a parent created just before), so request order is kept between statements.
    if (this.#pending && (this.#pending.sig !== sig || this.#pending.writes.length >= MAX_STATEMENT_ROWS)) {
      await this.#flush()
    }
    if (!this.#pending) this.#pending = { info: item.info, kind, cols, sig, writes: [] }
    // fromEntries defines own properties, so a key like "__proto__" cannot touch the prototype.
    const guard = row && !isFull(row) && kind !== 'delete' ? row.updatedAt : null
    this.#pending.writes.push({ item, row: Object.fromEntries(entries), guard, again: this.#again.has(item) })
    this.#pendingKeys.add(`${t.tableName}\u0000${item.key}`)
  }

  #statement(g: Group): Statement {
    const reg = this.ctx.registry
    switch (g.kind) {
      case 'create':
        return insertStatement(reg, g.info.t, g.cols)
      case 'update':
        return updateStatement(reg, g.info.t, g.cols, false, g.info.idKind)
      case 'resurrect':
        return updateStatement(reg, g.info.t, g.cols, true, g.info.idKind)
      case 'delete':
        return deleteStatement(reg, g.info.t, g.info.idKind)
    }
  }

  /** The parameters of a write statement for `writes` (see sql.ts). */
  #params(g: Group, writes: readonly Write[]): unknown[] {
    const values: unknown[] = [stringifyJsonLossless(writes.map((w) => w.row))]
    if (g.kind === 'create') return values
    values.push(writes.map((w) => w.item.key))
    if (g.kind !== 'delete') values.push(writes.map((w) => w.guard))
    return values
  }

  async #flush(): Promise<void> {
    const g = this.#pending
    if (!g) return
    this.#pending = undefined
    for (const k of this.#pendingKeys) this.#dirty.add(k)
    this.#pendingKeys.clear()
    const stmt = this.#statement(g)
    // Records to decide again after this statement: their row existed or changed unseen (see #record).
    const recheck: Write[] = []
    await this.db.query(SAVEPOINT)
    try {
      const { rows } = await withSpan(
        'synchro.push.batch',
        pushBatchAttributes(g.info.t.tableName, g.kind, g.writes.length),
        () => this.#query<WriteRow>(stmt, this.#params(g, g.writes)),
      )
      this.#record(g, g.writes, rows, recheck)
    } catch (err) {
      await this.db.query(ROLLBACK_TO)
      if (g.writes.length === 1) this.#failed(g, g.writes[0] as Write, err)
      else {
        // The batch failed as a whole: replay it one record per savepoint to find the bad ones.
        for (const w of g.writes) {
          await this.db.query(SAVEPOINT)
          try {
            const { rows } = await this.#query<WriteRow>(stmt, this.#params(g, [w]))
            this.#record(g, [w], rows, recheck)
          } catch (err) {
            await this.db.query(ROLLBACK_TO)
            this.#failed(g, w, err)
          }
        }
      }
    }
    if (recheck.length > 0) await this.#decideAgain(g.info, recheck)
  }

  #failed(g: Group, w: Write, err: unknown): void {
    const failure = classifyWriteError(err, g.kind)
    this.ctx.logger.warn(
      { table: g.info.t.tableName, op: g.kind, code: sqlState(err), reason: failure.reasonCode },
      'push record rejected',
    )
    this.#fail(w.item, failure)
  }

  /**
   * Turns the rows a write statement returned (numbered from 1 in input order) into results. A write that matched
   * nothing goes to `recheck` when its row may simply have been unknown or changed: a create over an existing id
   * (not pre-loaded, invisible, or committed concurrently), a guarded write whose stamp moved, or any write on a
   * row that was not locked. A write decided on a locked row, or already decided twice, cannot be helped: retryable.
   */
  #record(g: Group, writes: readonly Write[], rows: readonly WriteRow[], recheck: Write[]): void {
    const byN = new Map<number, WriteRow>()
    for (const r of rows) byN.set(r.n, r)
    for (const [i, w] of writes.entries()) {
      const r = byN.get(i + 1)
      if (r && r.u !== null) {
        const extra: Partial<PushResult> = { server_updated_at: trimRfc3339(r.u) }
        if (g.kind === 'delete' && r.d) extra.server_deleted_at = trimRfc3339(r.d)
        this.#applied(w.item, extra)
      } else if (g.kind === 'create' && r?.ok === false) {
        this.#fail(w.item, FORBIDDEN)
      } else if (!w.again && (g.kind === 'create' || this.#optimistic)) {
        recheck.push(w)
      } else {
        this.#fail(w.item, retryableFailure(g.kind))
      }
    }
  }

  /**
   * Loads the rows of `writes` locked and decides their records again, in request order; their writes (a
   * resurrection where a create met a deleted row, an update after a concurrent one) are flushed before
   * anything later in the request. A write decided this way that misses again is answered as retryable.
   */
  async #decideAgain(info: TableInfo, writes: readonly Write[]): Promise<void> {
    await this.#load(
      info,
      writes.map((w) => w.item.key),
    )
    for (const w of writes) {
      this.#dirty.delete(`${info.t.tableName}\u0000${w.item.key}`)
      this.#again.add(w.item)
      const row = this.#state.get(info.t.tableName)?.get(w.item.key)
      // A create whose id belongs to a row the caller may not write: never written, nothing returned.
      if (w.item.op === 'create' && !row?.writable) this.#fail(w.item, FORBIDDEN)
      else await this.#dispatch(w.item)
    }
    await this.#flush()
  }
}

interface WriteRow {
  n: number
  ok?: boolean
  u: string | null
  d?: string | null
}

function failureInternal(): RecordFailure {
  return { status: 'rejected_retryable', reasonCode: 'internal_error', message: 'internal error' }
}
