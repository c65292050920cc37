import type { PushRecord, PushResult } from '@synchro/protocol'
import type pg from 'pg'
import type { EngineContext } from '../core/context.js'
import type { SchemaContract } from '../schema/contract.js'
import type { FinalCommit } from './commit.js'
import { andThen, decide, needsRow, type Outcome, type Resolve } from './decide.js'
import { FORBIDDEN } from './errors.js'
import { resolverOf } from './resolve.js'
import { PushResults } from './results.js'
import { type LockRow, RowStates, rowKey } from './rows.js'
import { type Item, isItem, type TableInfo, validateRecord } from './validate.js'
import { BatchWriter, type Write } from './writer.js'

/**
 * One request: validate every record, pre-load the state of the rows they touch, decide each record in request
 * order and hand its write to the batch writer. Two ways to pre-load a table's rows:
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
export class PushRun {
  readonly #results = new PushResults()
  readonly #rows: RowStates
  readonly #writer: BatchWriter
  /** Records decided a second time (#decideAgain). */
  readonly #again = new Set<Item>()
  readonly #optimistic: boolean
  readonly #resolve: Resolve
  #items: Item[] | undefined
  #tables: ReturnType<typeof byTable> | undefined

  constructor(
    readonly ctx: EngineContext,
    db: pg.PoolClient,
    readonly contract: SchemaContract,
    readonly userId: string,
    /** Given when nothing runs in the transaction after the writes: the last one may commit it (commit.ts). */
    commit?: FinalCommit,
  ) {
    this.#optimistic = ctx.conflictResolver.stampsOnly === true && !ctx.hooks.onConflict
    this.#rows = new RowStates(db, ctx.registry)
    this.#writer = new BatchWriter(
      db,
      ctx.registry,
      ctx.logger,
      this.#optimistic,
      this.#rows,
      this.#results,
      (i, w) => this.#decideAgain(i, w),
      commit,
    )
    this.#resolve = resolverOf(ctx)
  }

  /** Validates every record (no database access); `run` decides the valid ones. Idempotent. */
  validate(changes: readonly PushRecord[]): Item[] {
    if (this.#items) return this.#items
    const items: Item[] = []
    for (const [index, rec] of changes.entries()) {
      const v = validateRecord(this.ctx.registry, this.contract, this.ctx.limits.maxJsonDepth, index, rec)
      if (isItem(v)) items.push(v)
      else this.#results.reject(index, rec, v)
    }
    this.#items = items
    return items
  }

  /**
   * The stamp reads the optimistic pre-load starts with: per table, the ids of its updates and deletes (none when the
   * pre-load locks). A caller may run them itself (push/gate.ts) and hand their rows to `run`.
   */
  stampReads(changes: readonly PushRecord[]): StampRead[] {
    if (!this.#optimistic) return []
    this.#tables ??= byTable(this.validate(changes))
    return [...this.#tables.values()].filter((e) => e.probe.size > 0).map((e) => ({ info: e.info, keys: [...e.probe] }))
  }

  /** `stamps`: the rows of `stampReads`' queries by table name, when the caller ran them. */
  async run(changes: readonly PushRecord[], stamps?: ReadonlyMap<string, readonly LockRow[]>): Promise<PushResult[]> {
    const items = this.validate(changes)
    await this.#preload(items, stamps)
    for (const item of items) {
      const k = rowKey(item.info, item.key)
      // A second record for a row in the unflushed batch: write the batch first so this one sees its effect.
      if (this.#writer.pending(k)) await this.#writer.flush()
      if (this.#rows.isDirty(k)) await this.#rows.refresh(item.info, item.key)
      const decided = this.#decide(item)
      if (decided instanceof Promise) await decided
    }
    await this.#writer.flush(true)
    return this.#results.finish(changes)
  }

  /**
   * Locked: one locking query per table for every id the request touches. Optimistic: one stamp query per table
   * for the update / delete ids (unless `stamps` has its rows), then one locking query per table for the rows whose
   * outcome needs their data. Either way a second, data-free query runs only for the update/delete ids that are not
   * the caller's (to tell a global row from an invisible one).
   */
  async #preload(items: readonly Item[], stamps?: ReadonlyMap<string, readonly LockRow[]>): Promise<void> {
    this.#tables ??= byTable(items)
    const tables = this.#tables
    if (!this.#optimistic) {
      for (const { info, keys, probe } of tables.values()) await this.#rows.load(info, [...keys], probe)
      return
    }
    for (const { info, probe } of tables.values()) {
      if (probe.size === 0) continue
      const read = stamps?.get(info.t.tableName)
      if (read) await this.#rows.loaded(info, [...probe], read, probe)
      else await this.#rows.load(info, [...probe], probe, false)
    }
    const full = await rowsNeeded(items, this.#rows, this.userId, this.ctx)
    for (const { info, keys } of full.values()) await this.#rows.load(info, keys)
  }

  /** Decides `item` on its row's current state and carries the outcome out; a promise only when that has to wait. */
  #decide(item: Item): void | Promise<void> {
    return andThen(decide(item, this.#rows.get(item.info, item.key), this.userId, this.#resolve), (outcome) =>
      this.#carryOut(item, outcome),
    )
  }

  #carryOut(item: Item, outcome: Outcome): void | Promise<void> {
    switch (outcome.kind) {
      case 'fail': {
        const extra = outcome.serverVersion ? { server_version: outcome.serverVersion } : {}
        this.#results.fail(item, outcome.failure, extra)
        return
      }
      case 'applied': {
        const extra = outcome.reasonCode ? { reason_code: outcome.reasonCode, message: outcome.message } : {}
        this.#results.applied(item, extra)
        return
      }
      case 'write':
        return this.#writer.enqueue(item, outcome.write, outcome.entries, outcome.guard, this.#again.has(item))
      case 'reload':
        // Only stamps were read: load the row locked (its data is the answer) and decide on the newest version.
        return this.#rows.load(item.info, [item.key]).then(() => this.#decide(item))
    }
  }

  /**
   * Loads the rows of `writes` locked and decides their records again, in request order; their writes (a
   * resurrection where a create met a deleted row, an update after a concurrent one) are flushed before
   * anything later in the request. A write decided this way that misses again is answered as retryable.
   */
  async #decideAgain(info: TableInfo, writes: readonly Write[]): Promise<void> {
    await this.#rows.load(
      info,
      writes.map((w) => w.item.key),
    )
    for (const w of writes) {
      this.#rows.clean(rowKey(info, w.item.key))
      this.#again.add(w.item)
      const row = this.#rows.get(info, w.item.key)
      // A create whose id belongs to a row the caller may not write: never written, nothing returned.
      if (w.item.op === 'create' && !row?.writable) this.#results.fail(w.item, FORBIDDEN)
      else await this.#decide(w.item)
    }
    await this.#writer.flush()
  }
}

/**
 * The rows, by table, whose stored data the decision of a record needs (conflicts: `server_version`, resolvers that
 * read `serverData`): only the first record of each row counts (later ones re-read it).
 */
async function rowsNeeded(
  items: readonly Item[],
  rows: RowStates,
  userId: string,
  ctx: EngineContext,
): Promise<Map<string, { info: TableInfo; keys: string[] }>> {
  const full = new Map<string, { info: TableInfo; keys: string[] }>()
  const seen = new Set<string>()
  for (const it of items) {
    const k = rowKey(it.info, it.key)
    if (seen.has(k)) continue
    seen.add(k)
    const row = rows.get(it.info, it.key)
    if (!row?.writable) continue
    const needs = needsRow(it, row, userId, ctx.conflictResolver)
    if (!(needs instanceof Promise ? await needs : needs)) continue
    const e = full.get(it.info.t.tableName) ?? { info: it.info, keys: [] }
    e.keys.push(it.key)
    full.set(it.info.t.tableName, e)
  }
  return full
}

/** One stamp query of the optimistic pre-load: the update / delete ids of one table. */
export interface StampRead {
  info: TableInfo
  keys: string[]
}

/** The request's records by table: every id, and the ids of updates and deletes (`probe`). */
function byTable(items: readonly Item[]): Map<string, { info: TableInfo; keys: Set<string>; probe: Set<string> }> {
  const tables = new Map<string, { info: TableInfo; keys: Set<string>; probe: Set<string> }>()
  for (const it of items) {
    const e = tables.get(it.info.t.tableName) ?? { info: it.info, keys: new Set(), probe: new Set() }
    e.keys.add(it.key)
    if (it.op !== 'create') e.probe.add(it.key)
    tables.set(it.info.t.tableName, e)
  }
  return tables
}
