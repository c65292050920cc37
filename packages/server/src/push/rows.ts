import type pg from 'pg'
import type { Registry } from '../registry/registry.js'
import { EXACT_JSON_TYPES } from '../util/json.js'
import { lockStatement, type Statement, stampStatement, visibilityStatement } from './sql.js'
import type { TableInfo } from './validate.js'

/**
 * A stored row as the pre-load sees it. Rows the caller may write carry their stamps and, when read with
 * lockStatement (locked for the rest of the transaction), their data; rows read with stampStatement carry no data
 * and no lock. Rows that exist but are not writable only say whether the caller may read them.
 */
export type RowState =
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
export type OwnRow = Extract<RowState, { writable: true }>
/** A row the caller may write, loaded with its data and locked. */
export type FullRow = OwnRow & { data: { [column: string]: unknown } }

export interface LockRow {
  id: string
  u: string
  d: string | null
  /** Absent from stampStatement rows. */
  data?: { [column: string]: unknown }
}

/** Runs a cached statement as a named prepared statement, JSON values parsed losslessly. */
export function runStatement<R extends pg.QueryResultRow>(
  db: pg.PoolClient,
  stmt: Statement,
  values: unknown[],
): Promise<pg.QueryResult<R>> {
  return db.query<R>({ name: stmt.name, text: stmt.text, values, types: EXACT_JSON_TYPES })
}

/** The key of a row across tables. */
export function rowKey(info: TableInfo, key: string): string {
  return `${info.t.tableName}\u0000${key}`
}

/**
 * What one push request knows about the rows it touches: per table, per canonical id, the row state (absent when
 * no such row is visible), and which rows were written since they were read (their state must be re-read).
 */
export class RowStates {
  readonly #state = new Map<string, Map<string, RowState>>()
  readonly #dirty = new Set<string>()

  constructor(
    readonly db: pg.PoolClient,
    readonly registry: Registry,
  ) {}

  get(info: TableInfo, key: string): RowState | undefined {
    return this.#state.get(info.t.tableName)?.get(key)
  }

  /** The row was written: re-read it before another record is decided on it. */
  markDirty(k: string): void {
    this.#dirty.add(k)
  }

  /** Re-reads the row (locked) when it was written since it was read. */
  /** Whether row `k` was written since it was read (`refresh` re-reads it). */
  isDirty(k: string): boolean {
    return this.#dirty.has(k)
  }

  async refresh(info: TableInfo, key: string): Promise<void> {
    const k = rowKey(info, key)
    if (!this.#dirty.has(k)) return
    await this.load(info, [key])
    this.#dirty.delete(k)
  }

  /** The row is about to be loaded again anyway. */
  clean(k: string): void {
    this.#dirty.delete(k)
  }

  /**
   * (Re)loads the state of `keys`: locked with data (lockStatement) or, with `locked` false, stamps only. Only keys
   * in `probe` that turn out not writable are probed for visibility; a create needs no probe: inserting over an
   * existing id fails quietly (ON CONFLICT DO NOTHING) and is rechecked.
   */
  async load(
    info: TableInfo,
    keys: readonly string[],
    probe: ReadonlySet<string> = new Set(keys),
    locked = true,
  ): Promise<void> {
    const stmt = (locked ? lockStatement : stampStatement)(this.registry, info.t, info.idKind)
    const { rows } = await runStatement<LockRow>(this.db, stmt, [keys])
    await this.loaded(info, keys, rows, probe)
  }

  /** Records what a lock or stamp query returned for `keys` (see `load`), probing the missing keys of `probe`. */
  async loaded(info: TableInfo, keys: readonly string[], rows: readonly LockRow[], probe: ReadonlySet<string>) {
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
        data: r.data === undefined ? undefined : syncedData(info, r.data),
      })
    }
    const missing = keys.filter((k) => probe.has(k) && !state.has(k))
    if (missing.length === 0) return
    const visible = await runStatement<{ id: string; r: boolean }>(
      this.db,
      visibilityStatement(this.registry, info.t, info.idKind),
      [missing],
    )
    for (const v of visible.rows) state.set(v.id, { writable: false, readable: v.r })
  }
}

/** to_jsonb(row) restricted to the synced columns (Decision 14). */
export function syncedData(info: TableInfo, data: { [column: string]: unknown }): { [column: string]: unknown } {
  if (!info.t.syncColumns) return data
  return Object.fromEntries(Object.entries(data).filter(([k]) => info.synced.has(k)))
}
