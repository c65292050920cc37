/**
 * The SQLite driver contract: a structural subset of what SQLite drivers offer (better-sqlite3, op-sqlite,
 * expo-sqlite, sqlite-wasm, wa-sqlite), async-first so that every one of them fits. Drivers do not need to
 * serialise anything: the SDK owns one connection and runs every statement and transaction under its own mutex
 * (expo-sqlite's and wa-sqlite's async transactions do not serialise themselves).
 */
import type { TabCoordination } from './tabs/types.js'

/** A value SQLite can store. Booleans are accepted as parameters and bound as 1/0. */
export type SqlValue = string | number | bigint | Uint8Array | null

/** A parameter accepted by the SDK; drivers bind booleans as 1/0 and `undefined` as NULL. */
export type SqlParam = SqlValue | boolean | undefined

/** A result row: column name → value. */
export type Row = { [column: string]: SqlValue }

export interface RunResult {
  /** Rows changed by the statement (SQLite `changes()`). */
  changes: number
}

/** Statements that run inside or outside a transaction. */
export interface SqliteExecutor {
  /** Runs a statement and returns its rows (`[]` for statements that return none). */
  all<T = Row>(sql: string, params?: readonly SqlParam[]): Promise<T[]>
  /** Runs a statement that returns no rows. */
  run(sql: string, params?: readonly SqlParam[]): Promise<RunResult>
  /** Runs several `;`-separated statements without parameters (DDL). */
  exec(sql: string): Promise<void>
  /**
   * Optional fast path: the same statement once per parameter list, in order. Drivers with prepared statements
   * implement it to spare one promise per row; the SDK falls back to `run` in a loop.
   */
  runMany?(sql: string, paramLists: readonly (readonly SqlParam[])[]): Promise<RunResult>
}

export interface SqliteDriver extends SqliteExecutor {
  /**
   * Set by drivers whose database several SDK instances share (browser tabs): SynchroClient then lets only the
   * owner instance open the database and sync, and routes the others' statements to it (src/tabs/).
   */
  readonly tabs?: TabCoordination
  /**
   * Runs `fn` inside a write transaction (`BEGIN IMMEDIATE` … `COMMIT`); rolls back and rethrows when `fn` throws.
   * The SDK never calls it concurrently and never nests it.
   */
  transaction<T>(fn: (tx: SqliteExecutor) => Promise<T>): Promise<T>
  close(): Promise<void>
}

/** Opens a driver for a database path (used with `dbPath` in the client config). */
export type DriverFactory = (path: string) => SqliteDriver | Promise<SqliteDriver>

/** A FIFO async mutex: one holder at a time, waiters served in arrival order. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve()
  private held = 0

  /** True while somebody holds the lock or waits for it. */
  get busy(): boolean {
    return this.held > 0
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.held++
    const prev = this.tail
    let release!: () => void
    this.tail = new Promise<void>((resolve) => {
      release = resolve
    })
    try {
      await prev
      return await fn()
    } finally {
      this.held--
      release()
    }
  }
}

/** Runs the same statement for each parameter list, through `runMany` when the driver has it. */
export async function runMany(
  ex: SqliteExecutor,
  sql: string,
  paramLists: readonly (readonly SqlParam[])[],
): Promise<number> {
  if (paramLists.length === 0) return 0
  if (ex.runMany) return (await ex.runMany(sql, paramLists)).changes
  let changes = 0
  for (const p of paramLists) changes += (await ex.run(sql, p)).changes
  return changes
}
