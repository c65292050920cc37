/** One browser tab running a SynchroClient on the shared OPFS database, driven from the test process. */

import type { TestBrowser } from '@synchro/test-harness/chromium'
import type { Page } from 'playwright-core'
import type { SynchroClientConfig } from '../../src/config.js'
import { decode, encode } from './codec.js'

export type TabConfig = Partial<
  Omit<SynchroClientConfig, 'driver' | 'fetch' | 'timers' | 'random' | 'authProvider'>
> & {
  name: string
  userID: string
  clientID: string
  start?: boolean
}

export class Tab {
  constructor(
    readonly page: Page,
    private readonly cfg: TabConfig,
  ) {}

  static async open(browser: TestBrowser, url: string, cfg: TabConfig): Promise<Tab> {
    const tab = new Tab(await browser.open(url), cfg)
    await tab.startClient()
    return tab
  }

  async startClient(): Promise<void> {
    const origin = new URL(this.page.url()).origin
    await this.page.evaluate((c) => window.synchroTest.startClient(c), {
      serverURL: origin,
      appVersion: '1.0.0',
      pushDebounce: 0.02,
      ...this.cfg,
    })
  }

  /** Reloads the page and starts the client again (same database). */
  async reload(): Promise<void> {
    await this.page.reload()
    await this.page.waitForFunction(() => 'synchroTest' in window)
    await this.startClient()
  }

  async call<T>(method: string, ...args: unknown[]): Promise<T> {
    return decode(
      await this.page.evaluate(([m, a]) => window.synchroTest.client(m, a), [
        method,
        encode(args) as unknown[],
      ] as const),
    ) as T
  }

  query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.call<T[]>('query', sql, params)
  }

  async execute(sql: string, params: unknown[] = []): Promise<number> {
    return (await this.call<{ rowsAffected: number }>('execute', sql, params)).rowsAffected
  }

  pending(): Promise<number> {
    return this.call<number>('pendingChangeCount')
  }

  async watch(key: string, sql: string, tables: string[]): Promise<void> {
    await this.page.evaluate(([k, s, t]) => window.synchroTest.watch(k, s, t), [key, sql, tables] as const)
  }

  async watched<T>(key: string): Promise<T[] | null> {
    return decode(await this.page.evaluate((k) => window.synchroTest.watched(k), key)) as T[] | null
  }

  info(): Promise<{ status: string | undefined; owner: boolean; error?: string | undefined }> {
    return this.page.evaluate(() => window.synchroTest.status())
  }

  /** Closes the tab without unload handlers: the browser releases its locks, as when a tab is killed. */
  async close(): Promise<void> {
    await this.page.close({ runBeforeUnload: false })
  }
}

/** Polls `fn` until it returns true (no fixed sleeps). */
export async function waitFor(fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await fn()) return
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}
