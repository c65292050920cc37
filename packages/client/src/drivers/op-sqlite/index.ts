/**
 * op-sqlite driver (`@synchro/client/op-sqlite`) for React Native. It takes a database opened by the app
 * (`open({ name })` from `@op-engineering/op-sqlite`) and never imports op-sqlite itself, so bundlers see no extra
 * dependency. Tested through the shared conformance suite against op-sqlite's own Node build.
 *
 * What the adapter smooths over (identically on devices and in Node):
 * - op-sqlite binds numbers, strings, booleans, null and ArrayBuffer(-views), but not bigint: a bigint is bound as
 *   its decimal text, which an INTEGER column stores as the exact 64-bit integer.
 * - BLOBs come back as ArrayBuffer on devices: rows get Uint8Array like every other driver.
 * - `exec` scripts are split into single statements (op-sqlite's Node build prepares one statement at a time).
 * - Transactions are explicit `BEGIN IMMEDIATE` … `COMMIT` (the SDK serialises them); `runMany` reuses one
 *   prepared statement. op-sqlite's own `executeBatch` opens a transaction of its own, so it is not used.
 */
import type { RunResult, SqliteDriver, SqliteExecutor, SqlParam } from '../../driver.js'
import { splitStatements } from '../statements.js'
import { queuedTransactions } from '../transactions.js'

/** The values op-sqlite binds. */
export type OpSqliteScalar = string | number | boolean | null | ArrayBuffer | ArrayBufferView

/** The part of op-sqlite's `DB` this driver uses (structural, so the SDK needs no import of op-sqlite). */
export interface OpSqliteDatabase {
  execute(
    query: string,
    params?: OpSqliteScalar[],
  ): Promise<{ rowsAffected: number; rows: Array<{ [column: string]: unknown }> }>
  prepareStatement(query: string): {
    bind(params: OpSqliteScalar[]): Promise<void>
    execute(): Promise<{ rowsAffected: number }>
  }
  close(): void
}

function bind(params: readonly SqlParam[] | undefined): OpSqliteScalar[] {
  if (params === undefined) return []
  return params.map((p) => {
    if (p === undefined) return null
    if (typeof p === 'boolean') return p ? 1 : 0
    if (typeof p === 'bigint') return p.toString()
    return p
  })
}

function fromRow(row: { [column: string]: unknown }): { [column: string]: unknown } {
  for (const k in row) {
    const v = row[k]
    if (v instanceof ArrayBuffer) row[k] = new Uint8Array(v)
  }
  return row
}

/** Wraps an open op-sqlite database as a SqliteDriver. */
export function opSqliteDriver(db: OpSqliteDatabase): SqliteDriver {
  const ex: SqliteExecutor = {
    async all<T>(sql: string, params?: readonly SqlParam[]): Promise<T[]> {
      const res = await db.execute(sql, bind(params))
      return res.rows.map(fromRow) as T[]
    },
    async run(sql: string, params?: readonly SqlParam[]): Promise<RunResult> {
      const res = await db.execute(sql, bind(params))
      return { changes: res.rowsAffected }
    },
    async exec(sql: string): Promise<void> {
      for (const stmt of splitStatements(sql)) await db.execute(stmt)
    },
    async runMany(sql: string, paramLists: readonly (readonly SqlParam[])[]): Promise<RunResult> {
      const stmt = db.prepareStatement(sql)
      let changes = 0
      for (const p of paramLists) {
        await stmt.bind(bind(p))
        changes += (await stmt.execute()).rowsAffected
      }
      return { changes }
    },
  }
  return {
    ...ex,
    transaction: queuedTransactions(ex, {
      begin: () => db.execute('BEGIN IMMEDIATE'),
      commit: () => db.execute('COMMIT'),
      // SQLite may have rolled back already (some errors end the transaction): nothing left to undo then.
      rollback: () => db.execute('ROLLBACK').catch(() => {}),
    }),
    async close(): Promise<void> {
      db.close()
    },
  }
}
