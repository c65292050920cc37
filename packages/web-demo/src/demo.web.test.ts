/**
 * The demo web app in real Chromium against the real daemon (`synchrod serve --demo --web`, a child process on a
 * fresh PostgreSQL database): each browser is its own device with its own OPFS database. With
 * SYNCHRO_SCREENSHOTS=1 (`npm run screenshots`) the screenshots in docs/images are regenerated from this run.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { SynchroClient } from '@synchro/client'
import { launchChromium, type TestBrowser } from '@synchro/test-harness/chromium'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { type Daemon, run, startDaemon } from '@synchro/test-harness/synchrod'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildWebDemo } from '../build.js'

// Runs once the client records rejections durably (client.rejections()); see packages/react/src/use-rejections.ts.
const HAS_REJECTIONS = typeof (SynchroClient.prototype as unknown as { rejections?: unknown }).rejections === 'function'
const IMAGES = fileURLToPath(new URL('../../../docs/images/', import.meta.url))
const SCREENSHOTS = process.env.SYNCHRO_SCREENSHOTS === '1'

let db: TestDatabase
let daemon: Daemon
let webDir: string
const browsers: TestBrowser[] = []

beforeAll(async () => {
  db = await createTestDatabase('synchro_webdemo')
  webDir = await mkdtemp(path.join(tmpdir(), 'synchro-web-demo-'))
  await buildWebDemo(webDir)
  daemon = await startDaemon(['serve', '--demo', '--web', webDir], {
    env: { DATABASE_URL: db.url, SLOT_NAME: db.name, LISTEN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'warn' },
  })
})
afterAll(async () => {
  for (const b of browsers.splice(0)) await b.close()
  daemon?.kill()
  await daemon?.exited
  await db?.drop()
  if (webDir) await rm(webDir, { recursive: true, force: true })
})

/** A new device: its own browser profile (OPFS, localStorage), signed in as `user` in the demo app. */
async function device(user: 'alice' | 'bob'): Promise<{ browser: TestBrowser; page: Page }> {
  const browser = await launchChromium()
  browsers.push(browser)
  const page = await browser.context.newPage()
  await page.setViewportSize({ width: 1000, height: 560 })
  page.on('pageerror', (e) => console.error('[page error]', e.message))
  await page.goto(daemon.url)
  await page.getByTestId(`user-${user}`).click()
  await page.getByTestId('add-order').waitFor({ timeout: 30_000 })
  return { browser, page }
}

const row = (page: Page, address: string) =>
  page.getByTestId('order-row').filter({ has: page.locator(`input[value="${address}"]`) })
const addresses = (page: Page) =>
  page.getByTestId('address').evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value).sort())
const sorted = (xs: string[]) => [...xs].sort()
const pendingCount = (page: Page) => page.getByTestId('pending-count').getAttribute('data-count')

async function addOrder(page: Page, address: string, total: string): Promise<void> {
  await page.getByTestId('new-address').fill(address)
  await page.getByTestId('new-total').fill(total)
  await page.getByTestId('add-order').click()
  await row(page, address).waitFor()
}

async function editAddress(page: Page, from: string, to: string): Promise<void> {
  const input = row(page, from).getByTestId('address')
  await input.fill(to)
  await input.press('Enter')
}

async function pgOrders(where: string, params: unknown[]): Promise<{ id: string; ship_address: string }[]> {
  return (await db.pool.query(`SELECT id, ship_address FROM orders WHERE ${where}`, params)).rows
}

describe('demo web app in Chromium', () => {
  let a: Page
  let b: Page

  it('two devices of the same user: an edit in one shows in the other within 2 s', async () => {
    ;[a, b] = [(await device('alice')).page, (await device('alice')).page]
    await addOrder(a, '1 Main St, Springfield', '42.00')
    await addOrder(a, '221B Baker St, London', '19.99')
    await row(b, '221B Baker St, London').waitFor({ timeout: 15_000 })
    await row(b, '1 Main St, Springfield').waitFor({ timeout: 15_000 })
    // Both devices are connected and idle: from here an edit travels push → WAL → changelog → poke → pull.
    await expect.poll(() => pendingCount(a), { timeout: 10_000 }).toBe('0')

    await editAddress(a, '1 Main St, Springfield', '2 Elm St, Springfield')
    await row(b, '2 Elm St, Springfield').waitFor({ timeout: 2_000 })
    await row(b, '2 Elm St, Springfield').getByTestId('status').selectOption('shipped')
    await expect
      .poll(() => row(a, '2 Elm St, Springfield').getByTestId('status').inputValue(), { timeout: 2_000 })
      .toBe('shipped')
    if (SCREENSHOTS) await a.screenshot({ path: path.join(IMAGES, 'demo.png') })
  })

  it('offline (the app switch and the network cut): edits queue, then both converge and PostgreSQL has the row once', async () => {
    const ctxB = browsers[1]!.context
    await b.getByTestId('offline-switch').check()
    await ctxB.setOffline(true)
    await editAddress(b, '221B Baker St, London', '10 Downing St, London')
    await addOrder(b, 'Written offline', '5.00')
    await expect.poll(() => pendingCount(b)).toBe('2')
    expect(await b.getByTestId('sync-status').textContent()).toBe('offline')
    // Meanwhile the other device sees nothing of it.
    expect(await addresses(a)).toEqual(sorted(['221B Baker St, London', '2 Elm St, Springfield']))
    expect(await pgOrders('ship_address = $1', ['Written offline'])).toEqual([])

    await ctxB.setOffline(false)
    await b.getByTestId('offline-switch').uncheck()
    await expect.poll(() => pendingCount(b), { timeout: 15_000 }).toBe('0')
    const converged = sorted(['10 Downing St, London', '2 Elm St, Springfield', 'Written offline'])
    await expect.poll(() => addresses(a), { timeout: 15_000 }).toEqual(converged)
    await expect.poll(() => addresses(b), { timeout: 15_000 }).toEqual(converged)
    expect(await pgOrders('ship_address = $1', ['Written offline'])).toHaveLength(1)
    expect(await pgOrders('ship_address = ANY($1) AND deleted_at IS NULL', [converged])).toHaveLength(3)
  })

  it('deleting on one device removes the order on the other', async () => {
    await row(a, 'Written offline').getByTestId('delete').click()
    await expect
      .poll(() => addresses(b), { timeout: 5_000 })
      .toEqual(sorted(['10 Downing St, London', '2 Elm St, Springfield']))
    const [gone] = await db.pool
      .query(`SELECT deleted_at FROM orders WHERE ship_address = 'Written offline'`)
      .then((r) => r.rows)
    expect(gone.deleted_at).not.toBeNull()
  })

  it.skipIf(!HAS_REJECTIONS)(
    'a write the server refuses shows as a rejected-write notice that can be dismissed',
    async () => {
      // Products are read-only for clients: written from the console, the server rejects it for good.
      await a.evaluate(() =>
        (
          window as unknown as { synchroDemo: { client: { execute(sql: string): Promise<unknown> } } }
        ).synchroDemo.client.execute(
          "INSERT INTO products (id, name) VALUES ('00000000-0000-4000-8000-00000000beef', 'Mine')",
        ),
      )
      const notice = a.getByTestId('rejections')
      await notice.getByText('table_read_only').waitFor({ timeout: 10_000 })
      await notice.getByRole('button', { name: 'dismiss' }).click()
      await notice.waitFor({ state: 'detached' })
    },
  )

  it('a second user never sees the first user’s orders', async () => {
    const { page: bob } = await device('bob')
    await bob.getByText('No orders yet').waitFor()
    await addOrder(bob, "Bob's place", '1.00')
    await expect.poll(() => pendingCount(bob), { timeout: 10_000 }).toBe('0')
    // Bob's order reached PostgreSQL and Alice's devices pulled since; neither side sees the other's orders.
    await expect.poll(async () => (await pgOrders('ship_address = $1', ["Bob's place"])).length).toBe(1)
    await a.getByTestId('sync-status').filter({ hasText: 'idle' }).waitFor()
    expect(await addresses(bob)).toEqual(["Bob's place"])
    expect(await addresses(a)).toEqual(sorted(['10 Downing St, London', '2 Elm St, Springfield']))
  })

  it('the status page loads without console errors and shows the client count of `synchrod status --json`', async () => {
    const page = await browsers[0]!.context.newPage()
    await page.setViewportSize({ width: 1000, height: 900 })
    const errors: string[] = []
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`${daemon.url}/status`)
    await page.locator('body[data-loaded="true"]').waitFor()
    const cli = await run(['status', '--json'], { env: { DATABASE_URL: db.url, SLOT_NAME: db.name } })
    expect(cli.code, cli.stderr).toBe(0)
    const clients = JSON.parse(cli.stdout).clients.total as number
    expect(clients).toBe(3) // Alice's two browsers and Bob's
    await expect.poll(() => page.getByTestId('clients-total').textContent(), { timeout: 5_000 }).toBe(String(clients))
    if (SCREENSHOTS) {
      // Let the request-rate chart collect a few points first.
      await page.waitForTimeout(6_000)
      await page.screenshot({ path: path.join(IMAGES, 'status.png'), fullPage: true })
    }
    expect(errors).toEqual([])
  })
})
