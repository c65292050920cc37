import { type SyncRecord, ZERO_TIME } from '@synchro/protocol'
import type { ConflictDecision, ConflictInput, ConflictResolver } from '../conflict/types.js'
import { trimRfc3339 } from '../util/time.js'
import { FORBIDDEN, type RecordFailure, type WriteKind } from './errors.js'
import type { FullRow, OwnRow, RowState } from './rows.js'
import type { Item, TableInfo } from './validate.js'

/**
 * The decision for one validated record on the state of its row: ownership, existence and conflict resolution
 * (§3 F–H, Decisions 2, 6, 29). Pure: it reads the row state it is given and asks `resolve` for conflict
 * decisions; it never touches the database. The caller carries out the outcome.
 */
export type Outcome =
  /** Answered without a write; `serverVersion` is the stored row (conflicts). */
  | { kind: 'fail'; failure: RecordFailure; serverVersion?: SyncRecord }
  /** Applied without a write (a delete of a deleted row; an update with nothing writable, Decision 29). */
  | { kind: 'applied'; reasonCode?: 'already_deleted'; message?: string }
  /**
   * Write `entries` (column → value, the id included). `guard`: the stamp the decision was taken on when the row
   * was read without a lock — the write must only happen while the row still carries it.
   */
  | { kind: 'write'; write: WriteKind; entries: [string, unknown][]; guard: string | null }
  /** The outcome needs the row's data but only its stamps were read: load it locked and decide again. */
  | { kind: 'reload' }

/**
 * Runs the conflict resolver; undefined when it failed (the record is then answered `internal_error`). A resolver
 * that decides synchronously (both built-ins do) answers without a promise: see `andThen`.
 */
export type Resolve = (input: ConflictInput) => ConflictDecision | undefined | Promise<ConflictDecision | undefined>

/**
 * `f(value)`, after `value` settled when it is a promise. The per-record steps of a push are synchronous in the common
 * case (a new id, a stamps-only resolver): not awaiting them there saves a few promises and microtask turns per record
 * (≈ 600 per 100-record push).
 */
export function andThen<T, R>(value: T | Promise<T>, f: (v: T) => R | Promise<R>): R | Promise<R> {
  return value instanceof Promise ? value.then(f) : f(value)
}

export function isFull(row: OwnRow): row is FullRow {
  return row.data !== undefined
}

export function failureInternal(): RecordFailure {
  return { status: 'rejected_retryable', reasonCode: 'internal_error', message: 'internal error' }
}

const NOT_FOUND: RecordFailure = {
  status: 'rejected_terminal',
  reasonCode: 'record_not_found',
  message: 'record not found',
}
const DELETE_NOT_FOUND: RecordFailure = { ...NOT_FOUND, message: 'record not found or not accessible' }
const EXISTS: RecordFailure = { status: 'conflict', reasonCode: 'record_exists', message: 'record already exists' }
const DELETED: RecordFailure = { status: 'conflict', reasonCode: 'record_deleted', message: 'record is deleted' }

/** `row`: the state of the record's row, or undefined when no such row is visible. */
export function decide(
  item: Item,
  row: RowState | undefined,
  userId: string,
  resolve: Resolve,
): Outcome | Promise<Outcome> {
  switch (item.op) {
    case 'create':
      return decideCreate(item, row, userId, resolve)
    case 'update':
      return decideUpdate(item, row, userId, resolve)
    case 'delete':
      return decideDelete(item, row)
  }
}

function decideCreate(
  item: Item,
  row: RowState | undefined,
  userId: string,
  resolve: Resolve,
): Outcome | Promise<Outcome> {
  const { info } = item
  const t = info.t
  if (!row) {
    // A brand-new id. Owner is always the caller; the record id wins over data.id (§3 F 75).
    const entries: [string, unknown][] = []
    for (const [c, v] of Object.entries(item.data ?? {})) {
      if (info.createCols.has(c) && c !== t.idColumn && c !== t.ownerColumn) entries.push([c, v])
    }
    entries.push([t.idColumn, item.key])
    if (t.ownerColumn) entries.push([t.ownerColumn, userId])
    return { kind: 'write', write: 'create', entries, guard: null }
  }
  // Someone else's row (readable or not) or a global row: never written, nothing about it returned.
  if (!row.writable) return { kind: 'fail', failure: FORBIDDEN }
  if (row.deletedAt === null) {
    if (!isFull(row)) return { kind: 'reload' }
    return { kind: 'fail', failure: EXISTS, serverVersion: serverVersion(info, row, false) }
  }
  return andThen(resolve(conflictInput(item, row, 'create', userId)), (decision): Outcome => {
    if (!decision) return { kind: 'fail', failure: failureInternal() }
    if (decision.winner === 'server') return serverWon(item, row, decision)
    return write('resurrect', updateEntries(item), row)
  })
}

function decideUpdate(
  item: Item,
  row: RowState | undefined,
  userId: string,
  resolve: Resolve,
): Outcome | Promise<Outcome> {
  // Decision 6: another user's row (or a global one) → forbidden; only a row that does not exist is not found.
  if (!row) return { kind: 'fail', failure: NOT_FOUND }
  if (!row.writable) return { kind: 'fail', failure: FORBIDDEN }
  if (row.deletedAt !== null) {
    if (!isFull(row)) return { kind: 'reload' }
    return { kind: 'fail', failure: DELETED, serverVersion: serverVersion(item.info, row, true) }
  }
  return andThen(resolve(conflictInput(item, row, 'update', userId)), (decision): Outcome => {
    if (!decision) return { kind: 'fail', failure: failureInternal() }
    if (decision.winner === 'server') return serverWon(item, row, decision)
    const entries = updateEntries(item)
    // Decision 29: nothing writable → applied, updated_at untouched, no server_updated_at.
    if (entries.length === 1) return { kind: 'applied' }
    return write('update', entries, row)
  })
}

function decideDelete(item: Item, row: RowState | undefined): Outcome {
  if (!row) return { kind: 'fail', failure: DELETE_NOT_FOUND }
  if (!row.writable) return { kind: 'fail', failure: FORBIDDEN }
  if (row.deletedAt !== null)
    return { kind: 'applied', reasonCode: 'already_deleted', message: 'record already deleted' }
  // A delete always wins: no guard.
  return { kind: 'write', write: 'delete', entries: [[item.info.t.idColumn, item.key]], guard: null }
}

function write(kind: 'update' | 'resurrect', entries: [string, unknown][], row: OwnRow): Outcome {
  return { kind: 'write', write: kind, entries, guard: isFull(row) ? null : row.updatedAt }
}

/** Decided on an unlocked stamp: the row's data is the answer, so load it and decide on the newest version. */
function serverWon(item: Item, row: OwnRow, decision: ConflictDecision): Outcome {
  if (!isFull(row)) return { kind: 'reload' }
  return {
    kind: 'fail',
    failure: { status: 'conflict', reasonCode: 'server_won_conflict', message: decision.reason },
    serverVersion: serverVersion(item.info, row, false),
  }
}

/** Writable keys of an update / resurrection plus the id (the join key, never assigned). */
function updateEntries(item: Item): [string, unknown][] {
  const entries: [string, unknown][] = []
  for (const [c, v] of Object.entries(item.data ?? {})) {
    if (item.info.updateCols.has(c)) entries.push([c, v])
  }
  entries.push([item.info.t.idColumn, item.key])
  return entries
}

export function conflictInput(item: Item, row: OwnRow, operation: 'create' | 'update', userId: string): ConflictInput {
  return {
    table: item.info.t.tableName,
    recordId: item.rec.id,
    operation,
    userId,
    clientUpdatedAt: item.rec.client_updated_at ?? ZERO_TIME,
    baseUpdatedAt: item.rec.base_updated_at,
    serverUpdatedAt: row.updatedAt,
    clientData: item.data ?? {},
    // Without data only with a stamps-only resolver, which does not read it.
    serverData: row.data ?? {},
  }
}

export function serverVersion(info: TableInfo, row: FullRow, withDeleted: boolean): SyncRecord {
  const rec: SyncRecord = {
    id: row.id,
    table_name: info.t.tableName,
    data: row.data,
    updated_at: trimRfc3339(row.updatedAt),
  }
  if (withDeleted && row.deletedAt !== null) rec.deleted_at = trimRfc3339(row.deletedAt)
  return rec
}

/**
 * Whether the outcome of `item` on a writable row read without data will need that row (a conflict answer
 * carries it as `server_version`). Only for a stamps-only resolver: calling it here is free of effects.
 */
export function needsRow(
  item: Item,
  row: OwnRow,
  userId: string,
  resolver: ConflictResolver,
): boolean | Promise<boolean> {
  if (isFull(row) || item.op === 'delete') return false
  if (item.op === 'create' && row.deletedAt === null) return true
  if (item.op === 'update' && row.deletedAt !== null) return true
  let decision: ConflictDecision | Promise<ConflictDecision>
  try {
    decision = resolver.resolve(conflictInput(item, row, item.op, userId))
  } catch {
    return false // the decision reports it
  }
  if (!isThenable(decision)) return decision.winner === 'server'
  return Promise.resolve(decision).then(
    (d) => d.winner === 'server',
    () => false,
  )
}

/** A resolver's answer that is to be awaited (a promise or any thenable, as `await` would take it). */
export function isThenable<T>(v: T | PromiseLike<T>): v is PromiseLike<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function'
}
