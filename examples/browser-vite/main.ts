// The smallest browser app: a local SQLite database in OPFS, shared by every tab, synced with a Synchro server
// served from the same origin (see vite.config.ts for the dev proxy).
import { SynchroClient } from '@synchro/client'
import { openSqliteWasm } from '@synchro/client/sqlite-wasm'

// One id per installation, kept across reloads; every tab of the origin uses the same one.
const clientID = localStorage.getItem('synchro-client-id') ?? crypto.randomUUID()
localStorage.setItem('synchro-client-id', clientID)
const userID = new URLSearchParams(location.search).get('user') ?? '6f1c2a4e-8d3b-4c5a-9e7f-0a1b2c3d4e5f'

const client = new SynchroClient({
  driver: await openSqliteWasm({ name: 'app.sqlite3' }),
  serverURL: location.origin,
  userID, // dev-mode server; use authProvider: async () => token in production
  clientID,
  appVersion: '1.0.0',
})
await client.start() // resolves once the local database is open; sync runs in the background
// A first launch has no synced tables until the schema arrived: wait for one cycle before the first write.
await client.syncNow()

const list = document.getElementById('orders')!
client.watch<{ id: string; ship_address: string }>(
  'SELECT id, ship_address FROM orders WHERE deleted_at IS NULL ORDER BY id',
  [],
  ['orders'],
  (rows) => {
    list.replaceChildren(
      ...rows.map((r) => Object.assign(document.createElement('li'), { textContent: r.ship_address })),
    )
  },
)

// For the example's test: add an order and report.
const id = crypto.randomUUID()
await client.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [id, userID, 'from vite'])
await client.syncNow()
document.title = `synced ${id} pending=${await client.pendingChangeCount()}`
