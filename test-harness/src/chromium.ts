/**
 * Real Chromium for browser tests: Debian's `/usr/bin/chromium` (override with SYNCHRO_CHROMIUM) driven by
 * playwright-core. Never a browser download.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { type BrowserContext, chromium, type Page } from 'playwright-core'

export const CHROMIUM = process.env.SYNCHRO_CHROMIUM ?? '/usr/bin/chromium'

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export interface TestBrowser {
  context: BrowserContext
  /** Opens a tab on `url` and waits for the test page to be ready. */
  open(url: string): Promise<Page>
  /** Closes the browser, keeping the profile (OPFS) for `restart`. */
  stop(): Promise<void>
  /** Starts the browser again on the same profile (a browser restart). */
  restart(): Promise<void>
  /** Closes the browser and deletes its profile. */
  close(): Promise<void>
}

export async function launchChromium(): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install -y chromium)`)
  const profile = mkdtempSync(path.join(tmpdir(), 'synchro-chromium-'))
  const launch = () =>
    chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: ARGS, headless: true })
  const b: TestBrowser = {
    context: await launch(),
    async open(url) {
      const page = await b.context.newPage()
      page.on('pageerror', (e) => console.error('[page error]', e.message))
      await page.goto(url)
      await page.waitForFunction(() => 'synchroTest' in window)
      return page
    },
    async stop() {
      await b.context.close()
    },
    async restart() {
      b.context = await launch()
    },
    async close() {
      await b.context.close().catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    },
  }
  return b
}
