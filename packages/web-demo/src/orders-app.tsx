/** The orders screen: list, edit, create and delete orders; sync status, pending changes, rejections, offline switch. */
import { usePendingChanges, useQuery, useRejections, useSynchroClient, useSyncStatus } from '@synchro/react'
import { type FormEvent, useState, useSyncExternalStore } from 'react'
import type { NetworkSwitch } from './network.js'
import type { Session } from './session.js'

interface Order {
  id: string
  status: string
  ship_address: string
  total_cents: number | bigint
  order_date: string
}

const STATUSES = ['pending', 'processing', 'shipped', 'delivered', 'cancelled']

const ORDERS_SQL = `SELECT id, status, ship_address, total_cents, order_date FROM orders
  WHERE deleted_at IS NULL ORDER BY julianday(order_date) DESC, id`

const dollars = (cents: number | bigint) => (Number(cents) / 100).toFixed(2)
const toCents = (text: string) => Math.round(Number.parseFloat(text || '0') * 100)

function StatusBar({
  network,
  session,
  onSignOut,
}: {
  network: NetworkSwitch
  session: Session
  onSignOut: () => void
}) {
  const sync = useSyncStatus()
  const pending = usePendingChanges()
  const offline = !useSyncExternalStore(network.subscribe, () => network.online)
  const client = useSynchroClient()
  const state = offline ? 'offline' : !sync.online ? 'unreachable' : sync.syncing ? 'syncing' : sync.status
  return (
    <header className="bar">
      <strong>Synchro demo</strong>
      <span className="who">
        signed in as <b data-testid="who">{session.name}</b>
      </span>
      <span className={`pill ${state}`} data-testid="sync-status">
        {state}
      </span>
      <span data-testid="last-synced" className="muted">
        {sync.lastSyncedAt ? `synced ${sync.lastSyncedAt.toLocaleTimeString()}` : 'not synced yet'}
      </span>
      <span className="pending" data-testid="pending-count" data-count={pending.count}>
        {pending.count} pending
      </span>
      <label className="switch">
        <input
          type="checkbox"
          data-testid="offline-switch"
          checked={offline}
          onChange={(e) => {
            network.set(!e.target.checked)
            // Back online: sync at once instead of waiting for the timer.
            if (!e.target.checked) client.syncNow().catch(() => {})
          }}
        />
        offline
      </label>
      <button type="button" className="link" onClick={onSignOut}>
        switch user
      </button>
    </header>
  )
}

function Rejections() {
  const { rejections, clear } = useRejections()
  if (rejections.length === 0) return null
  return (
    <section className="rejections" data-testid="rejections">
      <h2>Rejected by the server</h2>
      {rejections.map((r) => (
        <div key={r.id} className="rejection">
          <span>
            {r.operation} {r.table} <code>{r.recordID.slice(0, 8)}</code>: <b>{r.reasonCode}</b>
            {r.message ? ` — ${r.message}` : ''} (local copy: {r.resolution.replace('_', ' ')})
          </span>
          <button type="button" className="link" onClick={() => void clear([r.id])}>
            dismiss
          </button>
        </div>
      ))}
    </section>
  )
}

function NewOrder({ userId }: { userId: string }) {
  const client = useSynchroClient()
  const [address, setAddress] = useState('')
  const [total, setTotal] = useState('')
  const submit = async (e: FormEvent) => {
    e.preventDefault()
    const values = [crypto.randomUUID(), userId, address.trim(), toCents(total), 'pending']
    if (!address.trim()) return
    // Cleared before the write, so what is typed meanwhile is not wiped when it finishes.
    setAddress('')
    setTotal('')
    await client.execute(
      'INSERT INTO orders (id, user_id, ship_address, total_cents, status) VALUES (?, ?, ?, ?, ?)',
      values,
    )
  }
  return (
    <form className="new" onSubmit={(e) => void submit(e)}>
      <input
        placeholder="Ship address"
        value={address}
        onChange={(e) => setAddress(e.target.value)}
        data-testid="new-address"
      />
      <input
        placeholder="Total $"
        inputMode="decimal"
        value={total}
        onChange={(e) => setTotal(e.target.value)}
        data-testid="new-total"
      />
      <button type="submit" data-testid="add-order">
        Add order
      </button>
    </form>
  )
}

function OrderRow({ order, pending }: { order: Order; pending: boolean }) {
  const client = useSynchroClient()
  const update = (column: 'ship_address' | 'status' | 'total_cents', value: string | number) =>
    client.execute(`UPDATE orders SET ${column} = ? WHERE id = ?`, [value, order.id]).catch(() => {})
  return (
    <tr data-testid="order-row" data-id={order.id}>
      <td>
        {/* Keyed by value: a change from another device replaces the field's content. */}
        <input
          key={order.ship_address}
          defaultValue={order.ship_address}
          data-testid="address"
          onBlur={(e) => e.target.value !== order.ship_address && void update('ship_address', e.target.value)}
          onKeyDown={(e) => e.key === 'Enter' && e.currentTarget.blur()}
        />
      </td>
      <td>
        <select value={order.status} data-testid="status" onChange={(e) => void update('status', e.target.value)}>
          {STATUSES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </td>
      <td className="num">
        <input
          key={String(order.total_cents)}
          className="total"
          defaultValue={dollars(order.total_cents)}
          data-testid="total"
          onBlur={(e) =>
            toCents(e.target.value) !== Number(order.total_cents) && void update('total_cents', toCents(e.target.value))
          }
          onKeyDown={(e) => e.key === 'Enter' && e.currentTarget.blur()}
        />
      </td>
      <td className="muted">{order.order_date.slice(0, 16).replace('T', ' ')}</td>
      <td>{pending && <span className="dot" title="not yet on the server" data-testid="row-pending" />}</td>
      <td>
        <button
          type="button"
          className="link danger"
          data-testid="delete"
          onClick={() => void client.execute('DELETE FROM orders WHERE id = ?', [order.id])}
        >
          delete
        </button>
      </td>
    </tr>
  )
}

export function OrdersApp({
  session,
  network,
  ready,
  onSignOut,
}: {
  session: Session
  network: NetworkSwitch
  /** False until the first sync attempt has settled (the local tables may not exist before). */
  ready: boolean
  onSignOut: () => void
}) {
  return (
    <>
      <StatusBar network={network} session={session} onSignOut={onSignOut} />
      <main>{ready ? <Orders userId={session.userId} /> : <p className="muted">Connecting to the server…</p>}</main>
    </>
  )
}

function Orders({ userId }: { userId: string }) {
  const { data: orders, error } = useQuery<Order>(ORDERS_SQL)
  const pending = usePendingChanges()
  const pendingIds = new Set(pending.changes.filter((c) => c.tableName === 'orders').map((c) => c.recordId))
  return (
    <>
      <Rejections />
      <NewOrder userId={userId} />
      {error && <p className="error">{error.message}</p>}
      <table className="orders">
        <thead>
          <tr>
            <th>Ship address</th>
            <th>Status</th>
            <th className="num">Total $</th>
            <th>Ordered</th>
            <th />
            <th />
          </tr>
        </thead>
        <tbody>
          {orders.map((o) => (
            <OrderRow key={o.id} order={o} pending={pendingIds.has(o.id)} />
          ))}
        </tbody>
      </table>
      {orders.length === 0 && <p className="muted empty">No orders yet: add one above.</p>}
      <p className="muted foot">
        Each browser is a device with its own SQLite database. Edit here, open the app in another browser as the same
        user, or switch this one offline: changes queue locally and sync when it is back.
      </p>
    </>
  )
}
