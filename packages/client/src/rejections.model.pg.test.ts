/**
 * Model test (fast-check) of "nothing silent" against a real server and PostgreSQL: three devices (two of them the
 * same user) create, update and delete parents (orders) and children (order_details) between syncs, write read-only
 * rows (products) and rows that are not theirs (global categories, children under another user's order), lose and
 * regain the network and restart. After quiescence every device holds exactly PostgreSQL's live rows for its user,
 * and the last write each device made to each record is on the server (an audit trigger saw its value, or the record
 * is deleted/absent for a delete) or in that device's `rejections()` — never neither.
 */
import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanupTempDirs, makeClient } from '../test/helpers.js'
import { type PgServer, startPgServer, switchableFetch } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'

let server: PgServer

beforeAll(async () => {
  server = await startPgServer('synchro_client_reject_model')
  // Every value a write ever stored, per record: "the server saw this write".
  await server.db.pool.query(`
    CREATE TABLE model_audit (t text NOT NULL, id text NOT NULL, token text);
    CREATE FUNCTION model_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO model_audit VALUES (TG_TABLE_NAME, NEW.id::text, to_jsonb(NEW) ->> TG_ARGV[0]);
      RETURN NEW;
    END $$;
    CREATE TRIGGER model_audit AFTER INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION model_audit('ship_address');
    CREATE TRIGGER model_audit AFTER INSERT OR UPDATE ON order_details
      FOR EACH ROW EXECUTE FUNCTION model_audit('product_name');
    CREATE TRIGGER model_audit AFTER INSERT OR UPDATE ON products FOR EACH ROW EXECUTE FUNCTION model_audit('name');
    CREATE TRIGGER model_audit AFTER INSERT OR UPDATE ON categories FOR EACH ROW EXECUTE FUNCTION model_audit('name');`)
}, 120_000)

afterAll(async () => {
  await server?.stop()
  cleanupTempDirs()
}, 60_000)

type Action =
  | { kind: 'order' | 'deleteOrder' | 'updateOrder'; dev: number; pick: number }
  | { kind: 'detail' | 'deleteDetail'; dev: number; pick: number }
  | { kind: 'readOnly' | 'foreign'; dev: number; pick: number }
  | { kind: 'sync' | 'toggle' | 'restart'; dev: number; pick: number }

const KINDS = [
  'order',
  'order',
  'deleteOrder',
  'updateOrder',
  'detail',
  'detail',
  'deleteDetail',
  'readOnly',
  'foreign',
  'sync',
  'sync',
  'sync',
  'toggle',
  'restart',
] as const
const actionArb: fc.Arbitrary<Action> = fc.record({
  kind: fc.constantFrom(...KINDS),
  dev: fc.nat(2),
  pick: fc.nat(1000),
}) as fc.Arbitrary<Action>

/** The last write a device made to a record: a value token, or a delete. */
type LastWrite = { token: string } | { deleted: true }

/** Token column per table (what the audit trigger records). */
const TOKEN: { [t: string]: string } = {
  orders: 'ship_address',
  order_details: 'product_name',
  products: 'name',
  categories: 'name',
}

interface Device {
  user: string
  clientID: string
  path: string | null
  client: SynchroClient
  net: ReturnType<typeof switchableFetch>
  last: Map<string, LastWrite>
}

function open(d: Omit<Device, 'client'>): SynchroClient {
  const c = makeClient(server.url, {
    userID: d.user,
    clientID: d.clientID,
    ...(d.path ? { dbPath: d.path } : {}),
    fetch: d.net.fetch,
    // The model drives every sync: no debounce, timer or live pokes.
    pushDebounce: 3600,
    maxRetryAttempts: 0,
  })
  // Listening turns off the once-per-reason warning; the check reads rejections() itself.
  c.onRejected(() => {})
  return c
}

async function pickRow(c: SynchroClient, sql: string, pick: number): Promise<string | null> {
  const rows = await c.query<{ id: string }>(sql)
  return rows.length === 0 ? null : rows[pick % rows.length]!.id
}

async function act(a: Action, devs: Device[], token: () => string): Promise<void> {
  const d = devs[a.dev]!
  const c = d.client
  const wrote = (table: string, id: string, w: LastWrite): void => {
    d.last.set(`${table}\u0000${id}`, w)
  }
  switch (a.kind) {
    case 'order': {
      const id = randomUUID()
      const t = token()
      await c.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [id, d.user, t])
      return wrote('orders', id, { token: t })
    }
    case 'updateOrder':
    case 'deleteOrder': {
      const id = await pickRow(c, 'SELECT id FROM orders WHERE deleted_at IS NULL ORDER BY id', a.pick)
      if (!id) return
      if (a.kind === 'deleteOrder') {
        await c.execute('DELETE FROM orders WHERE id = ?', [id])
        return wrote('orders', id, { deleted: true })
      }
      const t = token()
      await c.execute('UPDATE orders SET ship_address = ? WHERE id = ?', [t, id])
      return wrote('orders', id, { token: t })
    }
    case 'detail': {
      // Under any local order, deleted ones included (a parent created and deleted before any push, too).
      const order = await pickRow(c, 'SELECT id FROM orders ORDER BY id', a.pick)
      if (!order) return
      const id = randomUUID()
      const t = token()
      await c.execute('INSERT INTO order_details (id, order_id, product_name) VALUES (?, ?, ?)', [id, order, t])
      return wrote('order_details', id, { token: t })
    }
    case 'deleteDetail': {
      const id = await pickRow(c, 'SELECT id FROM order_details WHERE deleted_at IS NULL ORDER BY id', a.pick)
      if (!id) return
      await c.execute('DELETE FROM order_details WHERE id = ?', [id])
      return wrote('order_details', id, { deleted: true })
    }
    case 'readOnly': {
      const t = token()
      if (a.pick % 2 === 0) {
        const id = randomUUID()
        await c.execute('INSERT INTO products (id, name) VALUES (?, ?)', [id, t])
        return wrote('products', id, { token: t })
      }
      const id = await pickRow(c, 'SELECT id FROM products WHERE deleted_at IS NULL ORDER BY id', a.pick)
      if (!id) return
      await c.execute('UPDATE products SET name = ? WHERE id = ?', [t, id])
      return wrote('products', id, { token: t })
    }
    case 'foreign': {
      const t = token()
      if (a.pick % 2 === 0) {
        const id = await pickRow(c, 'SELECT id FROM categories WHERE user_id IS NULL ORDER BY id', a.pick)
        if (!id) return
        await c.execute('UPDATE categories SET name = ? WHERE id = ?', [t, id])
        return wrote('categories', id, { token: t })
      }
      // A child under an order of another user (known from PostgreSQL, never readable by this device).
      const { rows } = await server.db.pool.query<{ id: string }>(
        'SELECT id::text FROM orders WHERE user_id::text <> $1 ORDER BY id LIMIT 1',
        [d.user],
      )
      if (!rows[0]) return
      const id = randomUUID()
      await c.execute('INSERT INTO order_details (id, order_id, product_name) VALUES (?, ?, ?)', [id, rows[0].id, t])
      return wrote('order_details', id, { token: t })
    }
    case 'sync':
      await c.syncNow().catch(() => {})
      return
    case 'toggle':
      d.net.online.value = !d.net.online.value
      return
    case 'restart':
      // start() must not wait for the network: the device is usable at once, offline or not.
      await c.close()
      d.client = open(d)
      await d.client.start()
      return
  }
}

async function serverLive(user: string): Promise<{ [t: string]: [string, string][] }> {
  const q = async (sql: string, params: unknown[] = []) =>
    (await server.db.pool.query<{ id: string; v: string }>(sql, params)).rows.map((r): [string, string] => [r.id, r.v])
  return {
    orders: await q(
      `SELECT id::text, ship_address AS v FROM orders WHERE deleted_at IS NULL AND user_id::text = $1 ORDER BY 1`,
      [user],
    ),
    order_details: await q(
      `SELECT d.id::text, d.product_name AS v FROM order_details d JOIN orders o ON o.id = d.order_id
       WHERE d.deleted_at IS NULL AND o.user_id::text = $1 ORDER BY 1`,
      [user],
    ),
    products: await q('SELECT id::text, name AS v FROM products WHERE deleted_at IS NULL ORDER BY 1'),
    categories: await q(
      `SELECT id::text, name AS v FROM categories WHERE deleted_at IS NULL AND (user_id IS NULL OR user_id::text = $1)
       ORDER BY 1`,
      [user],
    ),
  }
}

async function localLive(c: SynchroClient): Promise<{ [t: string]: [string, string][] }> {
  const out: { [t: string]: [string, string][] } = {}
  for (const [t, col] of Object.entries(TOKEN)) {
    const rows = await c.query<{ id: string; v: string }>(
      `SELECT id, ${col} AS v FROM ${t} WHERE deleted_at IS NULL ORDER BY id`,
    )
    out[t] = rows.map((r) => [r.id, r.v])
  }
  return out
}

async function quiesce(devs: Device[]): Promise<void> {
  for (const d of devs) d.net.online.value = true
  for (let round = 0; round < 3; round++) {
    for (const d of devs) await d.client.syncNow()
    await server.walCaughtUp()
  }
  for (const d of devs) await d.client.flush()
}

describe('nothing silent (model)', () => {
  it('after quiescence every device equals PostgreSQL, and every last write is on the server or rejected', async () => {
    let n = 0
    await fc.assert(
      fc.asyncProperty(fc.array(actionArb, { minLength: 5, maxLength: 30 }), async (actions) => {
        const users = [randomUUID(), randomUUID()]
        const devs: Device[] = []
        for (let i = 0; i < 3; i++) {
          const base = {
            user: users[i % 2]!,
            clientID: `model-${randomUUID()}`,
            path: null as string | null,
            net: switchableFetch(),
            last: new Map<string, LastWrite>(),
          }
          const client = open(base)
          base.path = client.getPath()
          const d: Device = { ...base, client }
          devs.push(d)
          await client.start()
          await client.syncNow()
        }
        try {
          for (const a of actions) await act(a, devs, () => `w${n++}`)
          await quiesce(devs)
          for (const d of devs) {
            expect(await d.client.pendingChangeCount()).toBe(0)
            expect(await localLive(d.client)).toEqual(await serverLive(d.user))
            const rejected = await d.client.rejections()
            for (const [key, w] of d.last) {
              const [table, id] = key.split('\u0000') as [string, string]
              const mine = rejected.filter((r) => r.table === table && r.recordID === id)
              if ('deleted' in w) {
                const { rows } = await server.db.pool.query(
                  `SELECT 1 FROM ${table} WHERE id::text = $1 AND deleted_at IS NULL`,
                  [id],
                )
                const onServer = rows.length === 0
                expect(onServer || mine.some((r) => r.operation === 'delete'), `delete of ${key}`).toBe(true)
              } else {
                const { rows } = await server.db.pool.query(
                  'SELECT 1 FROM model_audit WHERE t = $1 AND id = $2 AND token = $3',
                  [table, id, w.token],
                )
                const onServer = rows.length > 0
                const inRejections = mine.some((r) => r.clientData?.[TOKEN[table]!] === w.token)
                expect(onServer || inRejections, `write ${w.token} of ${key}`).toBe(true)
              }
            }
          }
        } finally {
          for (const d of devs) await d.client.close()
        }
      }),
      { numRuns: Number(process.env.REJECTION_MODEL_RUNS ?? 15) },
    )
  }, 300_000)
})
