/**
 * Property: three tabs writing at random while tabs close, crash mid-write and reload converge with PostgreSQL —
 * every write acknowledged to a tab is on the server exactly as the model says, whichever tab owned the database.
 */
import { randomUUID } from 'node:crypto'
import { launchChromium, type TestBrowser } from '@synchro/test-harness/chromium'
import fc from 'fast-check'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type BrowserSyncServer, startBrowserSyncServer } from '../../test/browser/sync-server.js'
import { Tab, type TabConfig } from '../../test/browser/tab.js'

let server: BrowserSyncServer
let browser: TestBrowser

beforeAll(async () => {
  server = await startBrowserSyncServer('synchro_client_tabs_prop')
  browser = await launchChromium()
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await server?.close()
}, 60_000)

type Write = { op: 'insert' } | { op: 'update'; row: number; text: string } | { op: 'delete'; row: number }
type Cmd =
  | { kind: 'write'; tab: number; write: Write }
  | { kind: 'close'; tab: number; graceful: boolean }
  | { kind: 'reload'; tab: number }
  /** Tab `tab` closes while tab `writer`'s write is in flight. */
  | { kind: 'closeDuring'; tab: number; writer: number; write: Write }

const tabArb = fc.nat(2)
const writeArb: fc.Arbitrary<Write> = fc.oneof(
  fc.constant<Write>({ op: 'insert' }),
  fc.record({ op: fc.constant('update' as const), row: fc.nat(5), text: fc.string({ maxLength: 6 }) }),
  fc.record({ op: fc.constant('delete' as const), row: fc.nat(5) }),
)
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('write' as const), tab: tabArb, write: writeArb }) },
  fc.record({ kind: fc.constant('close' as const), tab: tabArb, graceful: fc.boolean() }),
  fc.record({ kind: fc.constant('reload' as const), tab: tabArb }),
  fc.record({ kind: fc.constant('closeDuring' as const), tab: tabArb, writer: tabArb, write: writeArb }),
)

it('3 tabs × random writes with tab closes and reloads converge with PostgreSQL', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(cmdArb, { minLength: 4, maxLength: 12 }), async (cmds) => {
      const cfg: TabConfig = { name: `prop-${randomUUID()}.sqlite3`, userID: randomUUID(), clientID: randomUUID() }
      const open = () => Tab.open(browser, server.web.url, cfg)
      const tabs: Tab[] = []
      for (let i = 0; i < 3; i++) tabs.push(await open())
      const ids: string[] = []
      const model = new Map<string, string | null>() // id → address, null when deleted

      const write = async (tab: Tab, w: Write): Promise<void> => {
        if (w.op === 'insert') {
          const id = randomUUID()
          ids.push(id)
          await tab.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [id, cfg.userID, 'new'])
          model.set(id, 'new')
          return
        }
        const id = ids[w.row % Math.max(ids.length, 1)]
        if (!id) return
        if (w.op === 'update') {
          await tab.execute('UPDATE orders SET ship_address = ? WHERE id = ? AND deleted_at IS NULL', [w.text, id])
          if (model.get(id) !== null) model.set(id, w.text)
        } else {
          await tab.execute('DELETE FROM orders WHERE id = ?', [id])
          model.set(id, null)
        }
      }

      try {
        for (const c of cmds) {
          const tab = tabs[c.tab]!
          if (c.kind === 'write') await write(tab, c.write)
          else if (c.kind === 'reload') await tab.reload()
          else if (c.kind === 'close') {
            // Graceful: client.close() hands the database over; otherwise the tab just goes away.
            if (c.graceful) await tab.call('close')
            await tab.close()
            tabs[c.tab] = await open()
          } else if (c.tab !== c.writer) {
            const inFlight = write(tabs[c.writer]!, c.write)
            await tab.close()
            await inFlight
            tabs[c.tab] = await open()
          }
        }

        const t = tabs[0]!
        await t.call('syncNow')
        expect(await t.pending()).toBe(0)
        await server.walCaughtUp()
        await t.call('syncNow')
        const expected = [...model].filter(([, a]) => a !== null).sort(([x], [y]) => (x < y ? -1 : 1))
        const { rows } = await server.db.pool.query<{ id: string; ship_address: string }>(
          'SELECT id::text, ship_address FROM orders WHERE user_id = $1 AND deleted_at IS NULL ORDER BY id',
          [cfg.userID],
        )
        expect(rows.map((r) => [r.id, r.ship_address])).toEqual(expected)
        for (const tab of tabs) {
          const local = await tab.query<{ id: string; ship_address: string }>(
            'SELECT id, ship_address FROM orders WHERE deleted_at IS NULL ORDER BY id',
          )
          expect(local.map((r) => [r.id, r.ship_address])).toEqual(expected)
        }
      } finally {
        for (const tab of tabs) await tab.close().catch(() => {})
      }
    }),
    { numRuns: 4 },
  )
}, 300_000)
