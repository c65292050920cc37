/**
 * Many tabs, one database, one sync loop — in real Chromium against the real server and PostgreSQL.
 */
import { randomUUID } from 'node:crypto'
import { launchChromium, type TestBrowser } from '@synchro/test-harness/chromium'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type BrowserSyncServer, startBrowserSyncServer } from '../../test/browser/sync-server.js'
import { Tab, type TabConfig, waitFor } from '../../test/browser/tab.js'

let server: BrowserSyncServer
let browser: TestBrowser

beforeAll(async () => {
  server = await startBrowserSyncServer('synchro_client_tabs')
  browser = await launchChromium()
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await server?.close()
}, 60_000)

function config(over: Partial<TabConfig> = {}): TabConfig {
  return { name: `db-${randomUUID()}.sqlite3`, userID: randomUUID(), clientID: `web-${randomUUID()}`, ...over }
}

const open = (cfg: TabConfig) => Tab.open(browser, server.web.url, cfg)

async function serverOrder(id: string): Promise<{ ship_address: string; total_cents: string } | undefined> {
  const { rows } = await server.db.pool.query('SELECT ship_address, total_cents::text FROM orders WHERE id = $1', [id])
  return rows[0]
}

const insertOrder = (tab: Tab, user: string, id: string, address: string) =>
  tab.execute('INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES (?, ?, ?, 0)', [id, user, address])

describe('tabs sharing one database', () => {
  it('one tab owns the database; both tabs see a remote change and each other’s writes', async () => {
    const cfg = config()
    const a = await open(cfg)
    const b = await open(cfg)
    expect((await a.info()).owner).toBe(true)
    expect((await b.info()).owner).toBe(false)
    await a.watch('orders', 'SELECT id, ship_address FROM orders ORDER BY id', ['orders'])
    await b.watch('orders', 'SELECT id, ship_address FROM orders ORDER BY id', ['orders'])

    // A change made on the server reaches both tabs (pulled once by the owner, announced to the other).
    const remote = randomUUID()
    await server.db.pool.query(
      `INSERT INTO orders (id, user_id, ship_address, total_cents) VALUES ($1, $2, 'from the server', 5)`,
      [remote, cfg.userID],
    )
    await server.walCaughtUp()
    for (const t of [a, b]) {
      await waitFor(
        async () => ((await t.watched<{ id: string }>('orders')) ?? []).some((r) => r.id === remote),
        'the remote order in both tabs',
      )
    }

    // A write in the follower goes through the owner, reaches the server and the owner's watchers.
    const local = randomUUID()
    await insertOrder(b, cfg.userID, local, 'from tab b')
    await waitFor(
      async () => ((await a.watched<{ id: string }>('orders')) ?? []).some((r) => r.id === local),
      'tab b’s order in tab a',
    )
    await b.call('syncNow')
    expect((await serverOrder(local))?.ship_address).toBe('from tab b')
    expect(await a.pending()).toBe(0)
    await a.close()
    await b.close()
  })

  it('confirmed() in a tab that does not sync settles from the shared queue: applied, and rejected', async () => {
    const cfg = config()
    const a = await open(cfg)
    const b = await open(cfg)
    expect((await b.info()).owner).toBe(false)
    const ok = randomUUID()
    await insertOrder(b, cfg.userID, ok, 'confirmed from tab b')
    await b.call('confirmed', 'orders', ok)
    expect((await serverOrder(ok))?.ship_address).toBe('confirmed from tab b')
    // A child under an order this user cannot see: forbidden, and tab b's confirmed() says so.
    const foreign = randomUUID()
    await server.db.pool.query(`INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, 'not yours')`, [
      foreign,
      randomUUID(),
    ])
    const child = randomUUID()
    await b.execute(`INSERT INTO order_details (id, order_id, product_name) VALUES (?, ?, 'x')`, [child, foreign])
    await expect(b.call('confirmed', 'order_details', child)).rejects.toThrow(/forbidden/)
    expect(await b.query('SELECT id FROM order_details WHERE id = ?', [child])).toEqual([])
    const rejected = await b.call<{ reasonCode: string }[]>('rejections')
    expect(rejected.map((r) => r.reasonCode)).toEqual(['forbidden'])
    await a.close()
    await b.close()
  })

  it('the owner tab closes mid-stream: the other takes over, every write is applied once and pushed once', async () => {
    const cfg = config()
    const a = await open(cfg)
    const b = await open(cfg)
    const id = randomUUID()
    await insertOrder(b, cfg.userID, id, 'counter')
    await b.call('syncNow')
    server.web.setSyncReachable(false)

    // Tab b increments while tab a (the owner) dies after a few increments: requests in flight at that moment are
    // either confirmed committed or run again on the new owner, never applied twice.
    const N = 30
    let done = 0
    const increments = (async () => {
      for (let i = 0; i < N; i++) {
        await b.execute('UPDATE orders SET total_cents = total_cents + 1 WHERE id = ?', [id])
        done++
      }
    })()
    await waitFor(() => done >= 5, 'a few increments')
    await a.close()
    await increments
    expect((await b.info()).owner).toBe(true)
    const [row] = await b.query<{ total_cents: number }>('SELECT total_cents FROM orders WHERE id = ?', [id])
    expect(row!.total_cents).toBe(N)
    expect(await b.pending()).toBe(1)

    server.web.setSyncReachable(true)
    await b.call('syncNow')
    expect(await b.pending()).toBe(0)
    expect((await serverOrder(id))?.total_cents).toBe(String(N))
    await b.close()
  })

  it('an edit made offline survives a reload and a browser restart and is pushed once the browser is back online', async () => {
    // No timer and no live stream: only the `online` event can start the sync that delivers the edit.
    const cfg = config({ syncInterval: 0, live: false, maxRetryAttempts: 0 })
    let tab = await open(cfg)
    server.web.setSyncReachable(false)
    const id = randomUUID()
    await insertOrder(tab, cfg.userID, id, 'written offline')
    await waitFor(async () => (await tab.info()).status === 'error', 'the failed push')

    await tab.reload()
    expect(await tab.pending()).toBe(1)
    await browser.stop()
    await browser.restart()
    tab = await open(cfg)
    expect(await tab.pending()).toBe(1)
    expect(await tab.query('SELECT ship_address FROM orders WHERE id = ?', [id])).toEqual([
      { ship_address: 'written offline' },
    ])
    expect(await serverOrder(id)).toBeUndefined()

    server.web.setSyncReachable(true)
    await browser.context.setOffline(true)
    await browser.context.setOffline(false)
    await waitFor(async () => (await serverOrder(id)) !== undefined, 'the edit on the server')
    await waitFor(async () => (await tab.pending()) === 0, 'the queue to drain')
    const { rows } = await server.db.pool.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [id])
    expect(rows[0].n).toBe(1)
    await tab.close()
  })
})
