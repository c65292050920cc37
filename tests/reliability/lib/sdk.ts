// SynchroClient over real better-sqlite3 files, with a switchable network, and comparison against the server.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { type FetchLike, SynchroClient, type SynchroClientConfig } from '@synchro/client'
import { openBetterSqlite3 } from '@synchro/client/better-sqlite3'
import type pg from 'pg'

export interface Net {
  online: boolean
  fetch: FetchLike
}

/** A fetch that fails like a phone without network while `online` is false. */
export function switchableNet(): Net {
  const net: Net = {
    online: true,
    fetch: (input, init) => (net.online ? fetch(input, init) : Promise.reject(new TypeError('fetch failed (offline)'))),
  }
  return net
}

export class SdkPool {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'synchro-rel-sdk-'))
  readonly clients: SynchroClient[] = []
  private n = 0

  create(serverURL: string, userID: string, over: Partial<SynchroClientConfig> = {}): SynchroClient {
    const c = new SynchroClient({
      dbPath: path.join(this.dir, `c${this.n++}.sqlite`),
      driverFactory: (p) => openBetterSqlite3(p),
      serverURL,
      userID,
      clientID: `sdk-${this.n}-${userID.slice(0, 8)}`,
      appVersion: '1.0.0',
      syncInterval: 0,
      pushDebounce: 0.05,
      maxRetryAttempts: 0,
      requestTimeout: 15,
      random: () => 0,
      ...over,
    })
    this.clients.push(c)
    return c
  }

  async close(): Promise<void> {
    for (const c of this.clients.splice(0)) await c.close().catch(() => {})
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export interface OrderView {
  ship_address: string
  total_cents: number
}

/** Live orders and products of a client's SQLite file. */
export async function localState(
  c: SynchroClient,
): Promise<{ orders: Map<string, OrderView>; products: Map<string, number> }> {
  const orders = await c.query<{ id: string; ship_address: string; total_cents: number }>(
    'SELECT id, ship_address, total_cents FROM orders WHERE deleted_at IS NULL',
  )
  const products = await c.query<{ id: string; units_in_stock: number }>(
    'SELECT id, units_in_stock FROM products WHERE deleted_at IS NULL',
  )
  return {
    orders: new Map(orders.map((r) => [r.id, { ship_address: r.ship_address, total_cents: Number(r.total_cents) }])),
    products: new Map(products.map((r) => [r.id, Number(r.units_in_stock)])),
  }
}

/** The same view of the server for `user`. */
export async function serverState(
  pool: pg.Pool,
  user: string,
): Promise<{ orders: Map<string, OrderView>; products: Map<string, number> }> {
  const orders = await pool.query<{ id: string; ship_address: string; total_cents: string }>(
    'SELECT id::text, ship_address, total_cents::text FROM orders WHERE user_id::text = $1 AND deleted_at IS NULL',
    [user],
  )
  const products = await pool.query<{ id: string; units_in_stock: number }>(
    'SELECT id::text, units_in_stock FROM products WHERE deleted_at IS NULL',
  )
  return {
    orders: new Map(
      orders.rows.map((r) => [r.id, { ship_address: r.ship_address, total_cents: Number(r.total_cents) }]),
    ),
    products: new Map(products.rows.map((r) => [r.id, r.units_in_stock])),
  }
}

export function diffState(
  label: string,
  local: Awaited<ReturnType<typeof localState>>,
  server: Awaited<ReturnType<typeof serverState>>,
  max = 5,
): string[] {
  const out: string[] = []
  for (const [id, s] of server.orders) {
    const l = local.orders.get(id)
    if (!l) out.push(`${label}: order ${id} missing locally`)
    else if (l.ship_address !== s.ship_address || l.total_cents !== s.total_cents)
      out.push(`${label}: order ${id} local ${JSON.stringify(l)} server ${JSON.stringify(s)}`)
  }
  for (const id of local.orders.keys())
    if (!server.orders.has(id)) out.push(`${label}: order ${id} live locally, not on server`)
  for (const [id, n] of server.products) {
    if (local.products.get(id) !== n) out.push(`${label}: product ${id} local ${local.products.get(id)} server ${n}`)
  }
  for (const id of local.products.keys())
    if (!server.products.has(id)) out.push(`${label}: product ${id} extra locally`)
  return out.length > max ? [...out.slice(0, max), `${label}: … ${out.length - max} more`] : out
}
