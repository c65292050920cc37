import type { SqliteExecutor } from '../driver.js'

/** How a driver begins, commits and rolls back on its one connection. */
export interface TransactionControl {
  begin(): unknown
  commit(): unknown
  /** Called after a failure; must not throw when no transaction is open any more. */
  rollback(): unknown
}

/**
 * `SqliteDriver.transaction` for drivers that issue BEGIN IMMEDIATE/COMMIT/ROLLBACK themselves. The SDK serialises
 * transactions; the queue only protects direct users of a driver from interleaving two async transactions on the
 * one connection.
 */
export function queuedTransactions(
  ex: SqliteExecutor,
  control: TransactionControl,
): <T>(fn: (tx: SqliteExecutor) => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve()
  return <T>(fn: (tx: SqliteExecutor) => Promise<T>): Promise<T> => {
    const next = tail.then(async () => {
      await control.begin()
      try {
        const result = await fn(ex)
        await control.commit()
        return result
      } catch (err) {
        await control.rollback()
        throw err
      }
    })
    tail = next.catch(() => {})
    return next
  }
}
