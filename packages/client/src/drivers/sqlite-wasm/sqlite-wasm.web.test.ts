/** The shared driver conformance suite, run against sqlite-wasm on OPFS in a real Chromium page. */

import { launchChromium, type TestBrowser } from '@synchro/test-harness/chromium'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll } from 'vitest'
import { remoteDriver } from '../../../test/browser/remote-driver.js'
import { startWebServer, type TestWebServer } from '../../../test/browser/server.js'
import { registerDriverTests } from '../../driver-conformance.js'

let browser: TestBrowser
let server: TestWebServer
let page: Page
let n = 0

beforeAll(async () => {
  server = await startWebServer()
  browser = await launchChromium()
  page = await browser.open(server.url)
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await server?.close()
})

registerDriverTests('sqlite-wasm (OPFS, Chromium)', () => remoteDriver(page, `conformance-${n++}.sqlite3`))
