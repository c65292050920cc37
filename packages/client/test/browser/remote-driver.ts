/** A SqliteDriver in the test process whose every call runs on a real sqlite-wasm driver in a Chromium page. */
import type { Page } from 'playwright-core'
import type { RunResult, SqliteDriver, SqliteExecutor } from '../../src/driver.js'
import { decode, encode } from './codec.js'

type M = 'all' | 'run' | 'exec' | 'runMany'

export async function remoteDriver(page: Page, name: string): Promise<SqliteDriver> {
  const id = await page.evaluate((n) => window.synchroTest.openDriver(n), name)
  const call = async (tid: number | null, m: M, args: unknown[]): Promise<unknown> =>
    decode(
      await page.evaluate(
        ([i, t, mm, a]) => (t === null ? window.synchroTest.drv(i, mm, a) : window.synchroTest.tx(t, mm, a)),
        [id, tid, m, encode(args) as unknown[]] as const,
      ),
    )
  const executor = (tid: number | null): SqliteExecutor => ({
    all: async <T>(sql: string, params?: readonly unknown[]) => (await call(tid, 'all', [sql, params])) as T[],
    run: async (sql, params) => (await call(tid, 'run', [sql, params])) as RunResult,
    exec: async (sql) => void (await call(tid, 'exec', [sql])),
    runMany: async (sql, lists) => (await call(tid, 'runMany', [sql, lists])) as RunResult,
  })
  return {
    ...executor(null),
    async transaction(fn) {
      const tid = await page.evaluate((i) => window.synchroTest.txBegin(i), id)
      let out: Awaited<ReturnType<typeof fn>>
      try {
        out = await fn(executor(tid))
      } catch (err) {
        // The page's transaction callback rethrows; the page driver rolls back.
        await page.evaluate(([t, e]) => window.synchroTest.txEnd(t, e), [tid, String(err)] as const)
        throw err
      }
      const r = await page.evaluate((t) => window.synchroTest.txEnd(t), tid)
      if (r.error !== undefined) throw new Error(r.error)
      return out
    },
    close: () => page.evaluate((i) => window.synchroTest.closeDriver(i), id),
  }
}
