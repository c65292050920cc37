import { randomUUID } from 'node:crypto'
import type { PushResult } from '@synchro/protocol'
import { createAppRolePool, createTestApp, NORTHWIND_TABLES, type TestApp } from '@synchro/test-harness'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { headerAuth } from '../auth/auth.js'
import { serverWins } from '../conflict/lww.js'
import type { ConflictDecision, ConflictInput } from '../conflict/types.js'
import { createEngine, type Engine } from '../engine/engine.js'
import type { EngineOptions } from '../engine/types.js'
import { BadRequestError } from '../errors.js'
import { createSyncHandler, type SyncHandlerOptions } from '../http/handler.js'

// One extra owner table covering the JSON-typed and bytea columns of Decisions 23 / 27.
const TYPES_SQL = `
CREATE TABLE IF NOT EXISTS push_types (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  blob bytea,
  nums integer[] NOT NULL DEFAULT '{}',
  doc json,
  amount numeric(12,4),
  day date,
  at_time time,
  stamp timestamptz,
  flag boolean,
  status order_status,
  big bigint,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);`

type Call = (
  user: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) => Promise<{ status: number; body: any }>

interface Mode {
  name: string
  rls: boolean
}

const MODES: Mode[] = [
  { name: 'superuser, no RLS policies', rls: false },
  { name: 'non-superuser app role under the generated RLS policies', rls: true },
]

const RFC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/

describe.each(MODES)('push ($name)', (mode) => {
  let app: TestApp
  let rolePool: pg.Pool | undefined
  let db: pg.Pool
  let call: Call
  const engines: Engine[] = []
  let V = 0
  let H = ''

  /** An engine + handler on the mode's pool (superuser, or the RLS-bound role). */
  async function makeCaller(
    opts: Partial<EngineOptions> = {},
    handlerOpts: Partial<SyncHandlerOptions> = {},
  ): Promise<{ call: Call; engine: Engine }> {
    const engine = await createEngine({
      pool: rolePool ?? app.db.pool,
      registry: app.engine.ctx.registry,
      migrate: false,
      ...opts,
    })
    engines.push(engine)
    const handler = createSyncHandler(engine, { authenticate: headerAuth(), ...handlerOpts })
    const c: Call = async (user, path, body, headers = {}) => {
      const h: Record<string, string> = { 'x-user-id': user, 'content-type': 'application/json', ...headers }
      const res = await handler(
        new Request(`http://test${path}`, {
          method: 'POST',
          headers: h,
          body: typeof body === 'string' ? body : JSON.stringify(body),
        }),
      )
      const text = await res.text()
      let parsed: unknown = text
      try {
        parsed = JSON.parse(text)
      } catch {}
      return { status: res.status, body: parsed }
    }
    return { call: c, engine }
  }

  const clients = new Map<string, string>()
  async function client(user: string, c: Call = call): Promise<string> {
    const known = clients.get(user)
    if (known) return known
    const clientId = randomUUID()
    const r = await c(user, '/sync/register', {
      client_id: clientId,
      platform: 'test',
      app_version: '1.0.0',
      schema_version: 0,
      schema_hash: '',
    })
    expect(r.status).toBe(200)
    V = r.body.schema_version
    H = r.body.schema_hash
    clients.set(user, clientId)
    return clientId
  }

  async function pushAs(user: string, changes: unknown[] | undefined, c: Call = call) {
    const clientId = await client(user)
    const body: Record<string, unknown> = { client_id: clientId, schema_version: V, schema_hash: H }
    if (changes !== undefined) body.changes = changes
    return c(user, '/sync/push', body)
  }

  /** Push exactly one record and return its result (asserting the request succeeded). */
  async function one(user: string, change: Record<string, unknown>, c: Call = call) {
    const r = await pushAs(user, [change], c)
    expect(r.status).toBe(200)
    const all = [...r.body.accepted, ...r.body.rejected]
    expect(all).toHaveLength(1)
    return all[0]
  }

  const future = (ms = 60_000) => new Date(Date.now() + ms).toISOString()
  const past = (ms = 60_000) => new Date(Date.now() - ms).toISOString()

  async function createOrder(user: string, data: Record<string, unknown> = {}) {
    const id = randomUUID()
    const r = await one(user, {
      id,
      table_name: 'orders',
      operation: 'create',
      data: { ship_address: 'addr', ...data },
      client_updated_at: past(),
    })
    expect(r.status).toBe('applied')
    return { id, stamp: r.server_updated_at as string }
  }

  async function row(table: string, id: string): Promise<Record<string, any> | undefined> {
    const { rows } = await db.query(
      `SELECT to_jsonb(t) AS j,
              to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS u,
              to_char(deleted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS d
         FROM ${table} t WHERE id = $1`,
      [id],
    )
    const r = rows[0]
    if (!r) return undefined
    return { ...r.j, _u: r.u.replace(/\.?0+Z$/, 'Z'), _d: r.d?.replace(/\.?0+Z$/, 'Z') ?? null }
  }

  async function rowText(table: string, id: string): Promise<string | undefined> {
    const { rows } = await db.query(`SELECT to_jsonb(t)::text AS j FROM ${table} t WHERE id = $1`, [id])
    return rows[0]?.j
  }

  beforeAll(async () => {
    app = await createTestApp({
      seed: true,
      extraSql: TYPES_SQL,
      tables: [...NORTHWIND_TABLES, { tableName: 'push_types', ownerColumn: 'user_id' }],
    })
    db = app.db.pool
    if (mode.rls) {
      await app.engine.applyRls()
      rolePool = await createAppRolePool(app.db)
    }
    call = (await makeCaller()).call
  })

  afterAll(async () => {
    for (const e of engines) await e.close()
    await rolePool?.end()
    await app.close()
  })

  describe('§3 F general, create, update, delete, resurrection', () => {
    it('69 unregistered client → 404 client not registered', async () => {
      await client('f69-seed')
      const r = await call(randomUUID(), '/sync/push', {
        client_id: 'nobody',
        schema_version: V,
        schema_hash: H,
        changes: [],
      })
      expect(r.status).toBe(404)
      expect(r.body).toEqual({ error: 'client not registered' })
    })

    it('70 wrong schema pair or the bootstrap pair (0,"") → 409', async () => {
      const u = randomUUID()
      const clientId = await client(u)
      for (const [v, h] of [
        [0, ''],
        [V + 1, H],
        [V, 'f'.repeat(64)],
      ] as const) {
        const r = await call(u, '/sync/push', { client_id: clientId, schema_version: v, schema_hash: h })
        expect(r.status).toBe(409)
        expect(r.body).toMatchObject({ code: 'schema_mismatch', server_schema_version: V, server_schema_hash: H })
      }
    })

    it('71 changes [] or absent → 200 empty arrays, checkpoint 0, server_time; last_push_at / last_sync_at set', async () => {
      const u = randomUUID()
      const clientId = await client(u)
      for (const changes of [[], undefined]) {
        await db.query('UPDATE sync_clients SET last_push_at = NULL, last_sync_at = NULL WHERE user_id = $1', [u])
        const r = await pushAs(u, changes)
        expect(r.status).toBe(200)
        expect(r.body).toEqual({
          accepted: [],
          rejected: [],
          checkpoint: 0,
          server_time: expect.stringMatching(RFC),
          schema_version: V,
          schema_hash: H,
        })
        const { rows } = await db.query(
          'SELECT last_push_at IS NOT NULL AS p, last_sync_at IS NOT NULL AS s FROM sync_clients WHERE user_id = $1 AND client_id = $2',
          [u, clientId],
        )
        expect(rows).toEqual([{ p: true, s: true }])
      }
    })

    it('72 results echo id/table_name/operation verbatim, in request order; applied (incl. already_deleted) in accepted', async () => {
      const u = randomUUID()
      const upper = randomUUID().toUpperCase()
      const { id: gone } = await createOrder(u)
      await one(u, { id: gone, table_name: 'orders', operation: 'delete' })
      const r = await pushAs(u, [
        { id: upper, table_name: 'orders', operation: 'create', data: {} },
        { id: 'x', table_name: 'nope', operation: 'create', data: {} },
        { id: gone, table_name: 'orders', operation: 'delete' },
        { id: upper, table_name: 'orders', operation: 'update', data: { total_cents: 5 }, client_updated_at: future() },
        { id: 'y', table_name: 'orders', operation: 'Update', data: {} },
      ])
      expect(r.status).toBe(200)
      expect(r.body.accepted.map((x: PushResult) => [x.id, x.table_name, x.operation, x.reason_code])).toEqual([
        [upper, 'orders', 'create', undefined],
        [gone, 'orders', 'delete', 'already_deleted'],
        [upper, 'orders', 'update', undefined],
      ])
      expect(r.body.rejected.map((x: PushResult) => [x.id, x.table_name, x.operation, x.reason_code])).toEqual([
        ['x', 'nope', 'create', 'table_not_registered'],
        ['y', 'orders', 'Update', 'invalid_operation'],
      ])
      expect((await row('orders', upper.toLowerCase()))?.total_cents).toBe(5)
    })

    it('73 unregistered table, read-only table, unknown operations; check order table → pushability → operation → data', async () => {
      const u = randomUUID()
      const pid = randomUUID()
      const r = await pushAs(u, [
        { id: pid, table_name: 'customers', operation: 'create', data: {} },
        { id: pid, table_name: 'products', operation: 'create', data: { name: 'x' } },
        { id: pid, table_name: 'orders', operation: 'insert', data: {} },
        { id: pid, table_name: 'orders', operation: 'CREATE', data: {} },
        { id: pid, table_name: 'orders', operation: '', data: {} },
        { id: pid, table_name: 'customers', operation: 'bogus', data: null },
        { id: pid, table_name: 'products', operation: 'bogus', data: null },
        { id: pid, table_name: 'orders', operation: 'bogus', data: null },
      ])
      expect(r.status).toBe(200)
      expect(r.body.accepted).toEqual([])
      expect(r.body.rejected.map((x: PushResult) => [x.status, x.reason_code, x.message])).toEqual([
        ['rejected_terminal', 'table_not_registered', 'table not registered for sync'],
        ['rejected_terminal', 'table_read_only', 'table is read-only'],
        ['rejected_terminal', 'invalid_operation', 'unknown operation: insert'],
        ['rejected_terminal', 'invalid_operation', 'unknown operation: CREATE'],
        ['rejected_terminal', 'invalid_operation', 'unknown operation: '],
        ['rejected_terminal', 'table_not_registered', 'table not registered for sync'],
        ['rejected_terminal', 'table_read_only', 'table is read-only'],
        ['rejected_terminal', 'invalid_operation', 'unknown operation: bogus'],
      ])
      expect(await row('products', pid)).toBeUndefined()
    })

    it('74 create → applied with server_updated_at = stored updated_at (µs); user_id = caller', async () => {
      const u = randomUUID()
      const id = randomUUID()
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'create',
        data: {
          status: 'shipped',
          required_date: '2026-03-01',
          preferred_ship_time: '10:30:00',
          metadata: { a: [1, 2], b: { c: 'd' } },
          total_cents: 9007199254740991,
          order_date: '2026-03-05T12:00:00.123456Z',
        },
      })
      expect(r).toEqual({
        id,
        table_name: 'orders',
        operation: 'create',
        status: 'applied',
        server_updated_at: expect.stringMatching(RFC),
        // Server-set columns (owner, created_at, defaults, PostgreSQL's renderings) come back with the answer.
        server_version: {
          id,
          table_name: 'orders',
          updated_at: r.server_updated_at,
          data: expect.objectContaining({ id, user_id: u, status: 'shipped', created_at: expect.any(String) }),
        },
      })
      const stored = await row('orders', id)
      const { _u, _d, ...storedData } = stored ?? {}
      expect(r.server_version?.data).toEqual(storedData)
      // Sending the stored row back unchanged: nothing the server set differs, the field is omitted.
      const again = await one(u, {
        id,
        table_name: 'orders',
        operation: 'update',
        data: { ...storedData, ship_address: 'Somewhere 1' },
        client_updated_at: '2100-01-01T00:00:00Z',
      })
      expect(again).toEqual({
        id,
        table_name: 'orders',
        operation: 'update',
        status: 'applied',
        server_updated_at: expect.stringMatching(RFC),
      })
      expect(stored).toMatchObject({
        user_id: u,
        status: 'shipped',
        required_date: '2026-03-01',
        preferred_ship_time: '10:30:00',
        metadata: { a: [1, 2], b: { c: 'd' } },
        total_cents: 9007199254740991,
        deleted_at: null,
      })
      expect(stored?.order_date).toMatch(/^2026-03-05T12:00:00\.123456/)
      expect(r.server_updated_at).toBe(stored?._u)
    })

    it('75 create ignores data.user_id, data.id and timestamp columns', async () => {
      const u = randomUUID()
      const other = randomUUID()
      const id = randomUUID()
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'create',
        data: {
          id: randomUUID(),
          user_id: other,
          created_at: '2000-01-01T00:00:00Z',
          updated_at: '2000-01-01T00:00:00Z',
          deleted_at: '2000-01-01T00:00:00Z',
        },
      })
      expect(r.status).toBe('applied')
      const stored = await row('orders', id)
      expect(stored?.user_id).toBe(u)
      expect(stored?.created_at).not.toMatch(/^2000/)
      expect(stored?.updated_at).not.toMatch(/^2000/)
      expect(stored?.deleted_at).toBeNull()
      const { rows } = await db.query('SELECT count(*)::int AS n FROM orders WHERE user_id = $1', [other])
      expect(rows[0].n).toBe(0)
    })

    it('76 create order_details under the caller’s order → applied (parent FK allowed on insert)', async () => {
      const u = randomUUID()
      const { id: orderId } = await createOrder(u)
      const id = randomUUID()
      const r = await one(u, {
        id,
        table_name: 'order_details',
        operation: 'create',
        data: { order_id: orderId, product_name: 'Widget', quantity: 3, unit_price: 9.99 },
      })
      expect(r.status).toBe('applied')
      expect(await row('order_details', id)).toMatchObject({ order_id: orderId, quantity: 3, unit_price: 9.99 })
    })

    it('76b parent and child created in one push, in request order', async () => {
      const u = randomUUID()
      const orderId = randomUUID()
      const r = await pushAs(u, [
        { id: orderId, table_name: 'orders', operation: 'create', data: {} },
        { id: randomUUID(), table_name: 'order_details', operation: 'create', data: { order_id: orderId } },
        { id: randomUUID(), table_name: 'order_details', operation: 'create', data: { order_id: orderId } },
      ])
      expect(r.body.rejected).toEqual([])
      expect(r.body.accepted).toHaveLength(3)
    })

    it('77 create of a live id → conflict record_exists with server_version (full row, no deleted_at); row unchanged', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u, { ship_address: 'kept' })
      const before = await rowText('orders', id)
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'create',
        data: { ship_address: 'new' },
        client_updated_at: future(),
      })
      const stored = await row('orders', id)
      expect(r).toEqual({
        id,
        table_name: 'orders',
        operation: 'create',
        status: 'conflict',
        reason_code: 'record_exists',
        message: 'record already exists',
        server_version: {
          id,
          table_name: 'orders',
          data: expect.objectContaining({ id, user_id: u, ship_address: 'kept', deleted_at: null }),
          updated_at: stored?._u,
        },
      })
      expect(Object.keys(r.server_version.data).sort()).toEqual(
        [
          'created_at',
          'deleted_at',
          'id',
          'metadata',
          'order_date',
          'preferred_ship_time',
          'required_date',
          'ship_address',
          'status',
          'total_cents',
          'updated_at',
          'user_id',
        ].sort(),
      )
      expect(await rowText('orders', id)).toBe(before)
    })

    it('78/79 create with data [1,2], "x", missing or null → rejected_terminal invalid_data; others commit', async () => {
      const u = randomUUID()
      const ok = randomUUID()
      const bad = [[1, 2], 'x', undefined, null, 5, true]
      const r = await pushAs(u, [
        ...bad.map((data) => ({ id: randomUUID(), table_name: 'orders', operation: 'create', data })),
        { id: ok, table_name: 'orders', operation: 'create', data: {} },
      ])
      expect(r.status).toBe(200)
      expect(r.body.rejected.map((x: PushResult) => [x.status, x.reason_code, x.message])).toEqual(
        bad.map(() => ['rejected_terminal', 'invalid_data', 'invalid data format']),
      )
      expect(r.body.accepted.map((x: PushResult) => x.id)).toEqual([ok])
    })

    it('80 unknown column ignored; a value PostgreSQL rejects or a missing parent → terminal for that record only', async () => {
      const u = randomUUID()
      const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()]
      const r = await pushAs(u, [
        { id: ids[0], table_name: 'orders', operation: 'create', data: { no_such_column: 1, ship_address: 'a' } },
        { id: ids[1], table_name: 'orders', operation: 'create', data: { total_cents: 'lots' } },
        { id: ids[2], table_name: 'orders', operation: 'create', data: { status: 'teleported' } },
        { id: ids[3], table_name: 'order_details', operation: 'create', data: { order_id: randomUUID() } },
        { id: ids[4], table_name: 'orders', operation: 'create', data: { ship_address: 'e' } },
      ])
      expect(r.status).toBe(200)
      expect(r.body.accepted.map((x: PushResult) => x.id)).toEqual([ids[0], ids[4]])
      expect(r.body.rejected.map((x: PushResult) => [x.id, x.status, x.reason_code])).toEqual([
        [ids[1], 'rejected_terminal', 'invalid_data'],
        [ids[2], 'rejected_terminal', 'invalid_data'],
        [ids[3], 'rejected_terminal', 'forbidden'],
      ])
      expect(await row('orders', ids[0] as string)).toMatchObject({ ship_address: 'a' })
      expect(await row('orders', ids[4] as string)).toMatchObject({ ship_address: 'e' })
      expect(await row('orders', ids[1] as string)).toBeUndefined()
    })

    it('81 update with a newer client time → applied; server_updated_at returned', async () => {
      const u = randomUUID()
      const { id, stamp } = await createOrder(u)
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'update',
        data: { ship_address: 'updated', total_cents: 42 },
        client_updated_at: future(),
      })
      expect(r.status).toBe('applied')
      const stored = await row('orders', id)
      expect(stored).toMatchObject({ ship_address: 'updated', total_cents: 42 })
      expect(r.server_updated_at).toBe(stored?._u)
      expect(micros(r.server_updated_at) > micros(stamp)).toBe(true)
    })

    it('82 update silently ignores user_id, order_id, id, created_at, updated_at', async () => {
      const u = randomUUID()
      const { id: orderId } = await createOrder(u)
      const { id: other } = await createOrder(u)
      const detail = randomUUID()
      await one(u, { id: detail, table_name: 'order_details', operation: 'create', data: { order_id: orderId } })
      const before = await row('order_details', detail)
      const r = await one(u, {
        id: detail,
        table_name: 'order_details',
        operation: 'update',
        data: {
          order_id: other,
          id: randomUUID(),
          created_at: '2000-01-01T00:00:00Z',
          updated_at: '2000-01-01T00:00:00Z',
          quantity: 7,
        },
        client_updated_at: future(),
      })
      expect(r.status).toBe('applied')
      const after = await row('order_details', detail)
      expect(after).toMatchObject({ order_id: orderId, quantity: 7, created_at: before?.created_at })
      const o = await one(u, {
        id: orderId,
        table_name: 'orders',
        operation: 'update',
        data: { user_id: randomUUID(), ship_address: 'z' },
        client_updated_at: future(),
      })
      expect(o.status).toBe('applied')
      expect(await row('orders', orderId)).toMatchObject({ user_id: u, ship_address: 'z' })
    })

    it('83 update with {} or only protected keys → applied, nothing written, no server_updated_at', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u)
      const before = await rowText('orders', id)
      for (const data of [{}, { id, user_id: randomUUID(), created_at: future(), updated_at: future() }]) {
        const r = await one(u, { id, table_name: 'orders', operation: 'update', data, client_updated_at: future() })
        expect(r).toEqual({ id, table_name: 'orders', operation: 'update', status: 'applied' })
      }
      expect(await rowText('orders', id)).toBe(before)
    })

    it('84 update of a missing id → rejected_terminal record_not_found', async () => {
      const r = await one(randomUUID(), {
        id: randomUUID(),
        table_name: 'orders',
        operation: 'update',
        data: { ship_address: 'x' },
        client_updated_at: future(),
      })
      expect(r).toMatchObject({
        status: 'rejected_terminal',
        reason_code: 'record_not_found',
        message: 'record not found',
      })
      expect(r).not.toHaveProperty('server_version')
    })

    it('85 update of a soft-deleted row → conflict record_deleted, server_version with deleted_at', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u)
      const del = await one(u, { id, table_name: 'orders', operation: 'delete' })
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'update',
        data: { ship_address: 'x' },
        client_updated_at: future(),
      })
      expect(r).toMatchObject({ status: 'conflict', reason_code: 'record_deleted', message: 'record is deleted' })
      expect(r.server_version).toMatchObject({ id, table_name: 'orders', deleted_at: del.server_deleted_at })
      expect(r.server_version.updated_at).toBe(del.server_updated_at)
    })

    it('86 update losing resolution → conflict server_won_conflict with the reason, server_version without deleted_at', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u, { ship_address: 'server' })
      const before = await rowText('orders', id)
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'update',
        data: { ship_address: 'client' },
        client_updated_at: past(3_600_000),
      })
      expect(r).toMatchObject({
        status: 'conflict',
        reason_code: 'server_won_conflict',
        message: 'server version is newer',
      })
      expect(r.server_version).not.toHaveProperty('deleted_at')
      expect(r.server_version.data.ship_address).toBe('server')
      expect(await rowText('orders', id)).toBe(before)
    })

    it('87 update winning resolution with no / invalid data → rejected_terminal invalid_data', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u)
      for (const data of [undefined, null, [1], 'x']) {
        const r = await one(u, { id, table_name: 'orders', operation: 'update', data, client_updated_at: future() })
        expect(r).toMatchObject({ status: 'rejected_terminal', reason_code: 'invalid_data' })
      }
    })

    it('88/89 delete → applied with server_deleted_at; again → already_deleted, deleted_at unchanged', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u)
      const r = await one(u, { id, table_name: 'orders', operation: 'delete' })
      const stored = await row('orders', id)
      expect(r).toEqual({
        id,
        table_name: 'orders',
        operation: 'delete',
        status: 'applied',
        server_updated_at: stored?._u,
        server_deleted_at: stored?._d,
      })
      expect(stored?._d).toMatch(RFC)
      const again = await one(u, { id, table_name: 'orders', operation: 'delete' })
      expect(again).toEqual({
        id,
        table_name: 'orders',
        operation: 'delete',
        status: 'applied',
        reason_code: 'already_deleted',
        message: 'record already deleted',
      })
      expect((await row('orders', id))?._d).toBe(stored?._d)
    })

    it('90 delete of a missing id → record_not_found (record not found or not accessible)', async () => {
      const r = await one(randomUUID(), { id: randomUUID(), table_name: 'orders', operation: 'delete' })
      expect(r).toMatchObject({
        status: 'rejected_terminal',
        reason_code: 'record_not_found',
        message: 'record not found or not accessible',
      })
    })

    it('91 delete ignores data, client_updated_at and base_updated_at: a delete always wins', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u)
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'delete',
        data: 'garbage',
        client_updated_at: '2000-01-01T00:00:00Z',
        base_updated_at: '2999-01-01T00:00:00Z',
      })
      expect(r.status).toBe('applied')
      expect(r.server_deleted_at).toMatch(RFC)
    })

    it('92 resurrection with a newer client time → applied; deleted_at NULL; data written; owner unchanged', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u, { ship_address: 'old' })
      const del = await one(u, { id, table_name: 'orders', operation: 'delete' })
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'create',
        data: { ship_address: 'back', user_id: randomUUID() },
        client_updated_at: future(),
      })
      expect(r.status).toBe('applied')
      const stored = await row('orders', id)
      expect(stored).toMatchObject({ ship_address: 'back', user_id: u, deleted_at: null })
      expect(r.server_updated_at).toBe(stored?._u)
      expect(micros(r.server_updated_at) > micros(del.server_updated_at)).toBe(true)
    })

    it('93 resurrection losing LWW → conflict server_won_conflict (not record_exists)', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u)
      await one(u, { id, table_name: 'orders', operation: 'delete' })
      const r = await one(u, {
        id,
        table_name: 'orders',
        operation: 'create',
        data: { ship_address: 'back' },
        client_updated_at: past(3_600_000),
      })
      expect(r).toMatchObject({ status: 'conflict', reason_code: 'server_won_conflict' })
      expect(r.server_version).not.toHaveProperty('deleted_at')
      expect((await row('orders', id))?.deleted_at).not.toBeNull()
    })

    it('94 server_updated_at strictly increases across successive accepted writes of a row (also within one push)', async () => {
      const u = randomUUID()
      const id = randomUUID()
      const upd = (n: number) => ({
        id,
        table_name: 'orders',
        operation: 'update',
        data: { total_cents: n },
        client_updated_at: future(),
      })
      const r = await pushAs(u, [
        { id, table_name: 'orders', operation: 'create', data: {} },
        upd(1),
        upd(2),
        upd(3),
        { id, table_name: 'orders', operation: 'delete' },
        { id, table_name: 'orders', operation: 'create', data: { total_cents: 4 }, client_updated_at: future() },
        upd(5),
      ])
      expect(r.body.rejected).toEqual([])
      const stamps: string[] = r.body.accepted.map((x: PushResult) => x.server_updated_at)
      expect(stamps).toHaveLength(7)
      for (let i = 1; i < stamps.length; i++)
        expect(micros(stamps[i] as string) > micros(stamps[i - 1] as string)).toBe(true)
      const later = await one(u, upd(6))
      expect(micros(later.server_updated_at) > micros(stamps[6] as string)).toBe(true)
      expect(await row('orders', id)).toMatchObject({ total_cents: 6, _u: later.server_updated_at })
    })

    it('95 onPushAccepted error → 500 and full rollback (also with a mixed batch); retry without error commits', async () => {
      let fail = true
      const seen: number[] = []
      const { call: c } = await makeCaller({
        hooks: {
          async onPushAccepted(e) {
            seen.push(e.accepted.length)
            await e.db.query('SELECT 1')
            if (fail) throw new Error('hook says no')
          },
        },
      })
      const u = randomUUID()
      const ids = [randomUUID(), randomUUID()]
      const changes = [
        { id: ids[0], table_name: 'orders', operation: 'create', data: {} },
        { id: randomUUID(), table_name: 'products', operation: 'create', data: {} },
        { id: ids[1], table_name: 'orders', operation: 'create', data: {} },
      ]
      const bad = await pushAs(u, changes, c)
      expect(bad.status).toBe(500)
      expect(bad.body).toEqual({ error: 'failed to push changes' })
      for (const id of ids) expect(await row('orders', id as string)).toBeUndefined()
      fail = false
      const good = await pushAs(u, changes, c)
      expect(good.status).toBe(200)
      expect(good.body.accepted).toHaveLength(2)
      for (const id of ids) expect(await row('orders', id as string)).toBeDefined()
      expect(seen).toEqual([2, 2])
    })
  })

  describe('§3 G conflict resolution', () => {
    /** An order whose stored updated_at is exactly `at` (set straight in the database). */
    async function orderAt(u: string, at: string) {
      const { id } = await createOrder(u)
      await db.query('UPDATE orders SET updated_at = $2 WHERE id = $1', [id, at])
      return id
    }
    const upd = (id: string, extra: Record<string, unknown>) => ({
      id,
      table_name: 'orders',
      operation: 'update',
      data: { ship_address: 'client' },
      ...extra,
    })

    it('96 no base: client > server → applied; tie or older → conflict "server version is newer"', async () => {
      const u = randomUUID()
      const s = '2026-01-01T00:00:00.123456Z'
      const tie = await one(u, upd(await orderAt(u, s), { client_updated_at: s }))
      expect(tie).toMatchObject({ status: 'conflict', message: 'server version is newer' })
      const older = await one(u, upd(await orderAt(u, s), { client_updated_at: '2026-01-01T00:00:00.123455Z' }))
      expect(older).toMatchObject({ status: 'conflict', message: 'server version is newer' })
      const newer = await one(u, upd(await orderAt(u, s), { client_updated_at: '2026-01-01T00:00:00.1234561Z' }))
      expect(newer.status).toBe('applied')
    })

    it('97 tolerance 1s: client = server − 500ms → applied; server − 5s → conflict', async () => {
      const { call: c } = await makeCaller({ clockSkewToleranceMs: 1000 })
      const u = randomUUID()
      const s = '2026-01-01T00:00:10Z'
      const near = await one(u, upd(await orderAt(u, s), { client_updated_at: '2026-01-01T00:00:09.5Z' }), c)
      expect(near.status).toBe('applied')
      const far = await one(u, upd(await orderAt(u, s), { client_updated_at: '2026-01-01T00:00:05Z' }), c)
      expect(far).toMatchObject({ status: 'conflict', message: 'server version is newer' })
    })

    it('98 base == server (µs exact) → applied whatever the client time; base < server → rule without base', async () => {
      const u = randomUUID()
      const s = '2026-01-01T00:00:00.654321Z'
      const eq = await one(
        u,
        upd(await orderAt(u, s), { client_updated_at: '2000-01-01T00:00:00Z', base_updated_at: s }),
      )
      expect(eq.status).toBe('applied')
      // Same instant written with an offset.
      const off = await one(
        u,
        upd(await orderAt(u, s), {
          client_updated_at: '2000-01-01T00:00:00Z',
          base_updated_at: '2026-01-01T02:00:00.654321+02:00',
        }),
      )
      expect(off.status).toBe('applied')
      const olderBaseOldClient = await one(
        u,
        upd(await orderAt(u, s), {
          client_updated_at: '2000-01-01T00:00:00Z',
          base_updated_at: '2025-01-01T00:00:00Z',
        }),
      )
      expect(olderBaseOldClient).toMatchObject({ status: 'conflict', message: 'server version is newer' })
      const olderBaseNewClient = await one(
        u,
        upd(await orderAt(u, s), { client_updated_at: future(), base_updated_at: '2025-01-01T00:00:00Z' }),
      )
      expect(olderBaseNewClient.status).toBe('applied')
    })

    it('99 base > server → conflict "client base version is ahead of server version"', async () => {
      const u = randomUUID()
      const s = '2026-01-01T00:00:00.654321Z'
      const r = await one(
        u,
        upd(await orderAt(u, s), { client_updated_at: future(), base_updated_at: '2026-01-01T00:00:00.654322Z' }),
      )
      expect(r).toMatchObject({
        status: 'conflict',
        reason_code: 'server_won_conflict',
        message: 'client base version is ahead of server version',
      })
    })

    it('100 client_updated_at absent → zero time → server wins', async () => {
      const u = randomUUID()
      const r = await one(u, upd(await orderAt(u, '0001-01-02T00:00:00Z'), {}))
      expect(r).toMatchObject({ status: 'conflict', message: 'server version is newer' })
    })

    it('101 Kotlin: create then update with client and base 2000-01-01 → conflict with server_version', async () => {
      const u = randomUUID()
      const { id } = await createOrder(u)
      const t = '2000-01-01T00:00:00.000Z'
      const r = await one(u, upd(id, { client_updated_at: t, base_updated_at: t }))
      expect(r).toMatchObject({ status: 'conflict', reason_code: 'server_won_conflict' })
      expect(r.server_version).toMatchObject({ id, table_name: 'orders' })
    })

    it('102 ServerWins: updates and resurrections conflict "server always wins"; new creates and deletes apply', async () => {
      const { call: c } = await makeCaller({ conflictResolver: serverWins() })
      const u = randomUUID()
      const id = randomUUID()
      const created = await one(u, { id, table_name: 'orders', operation: 'create', data: {} }, c)
      expect(created.status).toBe('applied')
      const updated = await one(
        u,
        upd(id, { client_updated_at: future(), base_updated_at: created.server_updated_at }),
        c,
      )
      expect(updated).toMatchObject({
        status: 'conflict',
        reason_code: 'server_won_conflict',
        message: 'server always wins',
      })
      const deleted = await one(u, { id, table_name: 'orders', operation: 'delete' }, c)
      expect(deleted.status).toBe('applied')
      const back = await one(
        u,
        { id, table_name: 'orders', operation: 'create', data: {}, client_updated_at: future() },
        c,
      )
      expect(back).toMatchObject({
        status: 'conflict',
        reason_code: 'server_won_conflict',
        message: 'server always wins',
      })
    })

    it('103 two clients update one record concurrently (now−2s, now+2s) → both 200, the newer value wins', async () => {
      for (let round = 0; round < 5; round++) {
        const u = randomUUID()
        const { id } = await createOrder(u)
        await db.query(`UPDATE orders SET updated_at = now() - interval '1 hour' WHERE id = $1`, [id])
        const a = pushAs(u, [upd(id, { data: { ship_address: 'older' }, client_updated_at: past(2000) })])
        const b = pushAs(u, [upd(id, { data: { ship_address: 'newer' }, client_updated_at: future(2000) })])
        const [ra, rb] = round % 2 === 0 ? await Promise.all([a, b]) : (await Promise.all([b, a])).reverse()
        expect(ra?.status).toBe(200)
        expect(rb?.status).toBe(200)
        expect((await row('orders', id))?.ship_address).toBe('newer')
      }
    })

    it('103b a row committed by another writer after push read its stamp is decided again on that version', async () => {
      const u = randomUUID()
      await client(u)
      const cases = [
        { clientAt: '2026-01-01T00:00:30Z', status: 'conflict', stored: 'other' },
        { clientAt: future(), status: 'applied', stored: 'client' },
      ]
      for (const k of cases) {
        const id = await orderAt(u, '2026-01-01T00:00:00Z')
        const other = await db.connect()
        try {
          await other.query('BEGIN')
          await other.query(
            `UPDATE orders SET updated_at = '2026-01-01T00:01:00Z', ship_address = 'other' WHERE id = $1`,
            [id],
          )
          // The push reads the committed stamp (00:00), decides for the client and waits on the row lock.
          const pending = pushAs(u, [upd(id, { client_updated_at: k.clientAt })])
          for (let i = 0; i < 500; i++) {
            const { rows } = await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'`,
            )
            if ((rows[0]?.n ?? 0) > 0) break
            await new Promise((r) => setTimeout(r, 10))
          }
          await other.query('COMMIT')
          const r = await pending
          expect(r.status).toBe(200)
          const res = [...r.body.accepted, ...r.body.rejected][0]
          expect(res.status).toBe(k.status)
          const stored = await row('orders', id)
          expect(stored?.ship_address).toBe(k.stored)
          if (k.status === 'conflict') {
            expect(res).toMatchObject({ reason_code: 'server_won_conflict', message: 'server version is newer' })
            expect(res.server_version).toMatchObject({ updated_at: '2026-01-01T00:01:00Z' })
            expect(res.server_version.data.ship_address).toBe('other')
          } else {
            expect(res.server_updated_at).toBe(stored?._u)
            expect(res.server_updated_at > '2026-01-01T00:01:00Z').toBe(true)
          }
        } finally {
          await other.query('ROLLBACK').catch(() => {})
          other.release()
        }
      }
    })

    it('a resolver answering with a promise decides as a synchronous one; one that rejects → internal_error', async () => {
      const { call: c } = await makeCaller({
        conflictResolver: {
          name: 'async',
          stampsOnly: true,
          resolve: async (input) => {
            await new Promise((r) => setTimeout(r, 1))
            if (input.clientData.ship_address === 'boom') throw new Error('resolver down')
            return input.clientData.ship_address === 'mine'
              ? { winner: 'client', reason: 'client' }
              : { winner: 'server', reason: 'kept by the server' }
          },
        },
      })
      const u = randomUUID()
      const ids = [(await createOrder(u)).id, (await createOrder(u)).id, (await createOrder(u)).id]
      const r = await pushAs(
        u,
        ['mine', 'theirs', 'boom'].map((a, i) => upd(ids[i] as string, { data: { ship_address: a } })),
        c,
      )
      expect(r.status).toBe(200)
      expect(r.body.accepted).toEqual([expect.objectContaining({ id: ids[0], status: 'applied' })])
      expect(r.body.rejected).toEqual([
        expect.objectContaining({ id: ids[1], status: 'conflict', message: 'kept by the server' }),
        expect.objectContaining({ id: ids[2], status: 'rejected_retryable', reason_code: 'internal_error' }),
      ])
      expect(r.body.rejected[0].server_version).toMatchObject({
        id: ids[1],
        data: { ship_address: expect.any(String) },
      })
      expect((await row('orders', ids[0] as string))?.ship_address).toBe('mine')
    })

    it('a custom resolver (not stamps-only) sees the stored row in serverData; its server wins answer carries it', async () => {
      const inputs: ConflictInput[] = []
      const { call: c } = await makeCaller({
        conflictResolver: {
          name: 'custom',
          resolve: (input) => {
            inputs.push(input)
            return input.serverData.ship_address === 'keep'
              ? { winner: 'server', reason: 'kept by the server' }
              : { winner: 'client', reason: 'client' }
          },
        },
      })
      const u = randomUUID()
      const { id: kept } = await createOrder(u, { ship_address: 'keep' })
      const { id: free } = await createOrder(u, { ship_address: 'free' })
      const r = await pushAs(
        u,
        [upd(kept, { client_updated_at: future() }), upd(free, { client_updated_at: past(3_600_000) })],
        c,
      )
      expect(r.status).toBe(200)
      expect(inputs.map((i) => [i.recordId, i.serverData.ship_address, i.serverData.user_id])).toEqual([
        [kept, 'keep', u],
        [free, 'free', u],
      ])
      expect(r.body.rejected).toEqual([
        expect.objectContaining({
          id: kept,
          status: 'conflict',
          message: 'kept by the server',
          server_version: expect.objectContaining({ data: expect.objectContaining({ ship_address: 'keep' }) }),
        }),
      ])
      expect(r.body.accepted).toEqual([expect.objectContaining({ id: free, status: 'applied' })])
      expect((await row('orders', free))?.ship_address).toBe('client')
    })

    it('104 onConflict fires for every update / resurrection that reaches resolution, whichever side wins', async () => {
      const events: { input: ConflictInput; decision: ConflictDecision }[] = []
      const { call: c } = await makeCaller({ hooks: { onConflict: (e) => events.push(e) } })
      const u = randomUUID()
      const { id } = await createOrder(u)
      const { id: gone } = await createOrder(u)
      await one(u, { id: gone, table_name: 'orders', operation: 'delete' })
      const r = await pushAs(
        u,
        [
          upd(id, { client_updated_at: future() }),
          upd(id, { client_updated_at: past(3_600_000) }),
          upd(randomUUID(), { client_updated_at: future() }),
          upd(gone, { client_updated_at: future() }),
          { id: gone, table_name: 'orders', operation: 'create', data: {}, client_updated_at: future() },
        ],
        c,
      )
      expect(r.status).toBe(200)
      expect(events.map((e) => [e.input.recordId, e.input.operation, e.decision.winner])).toEqual([
        [id, 'update', 'client'],
        [id, 'update', 'server'],
        [gone, 'create', 'client'],
      ])
      expect(events[0]?.input.serverData).toMatchObject({ id, user_id: u })
      expect(events[0]?.input.clientData).toEqual({ ship_address: 'client' })
    })
  })

  describe('§3 H ownership and RLS (Decision 6)', () => {
    it('105 the generated statements for the test registry', () => {
      const sql = app.engine.rlsStatements()
      expect(sql.filter((s) => s.includes('"products"'))).toHaveLength(3)
      expect(sql.filter((s) => s.startsWith('CREATE POLICY'))).toHaveLength(13 + 4)
    })

    it('106 B updating or deleting A’s order → forbidden (Decision 6; under RLS the row is invisible: record_not_found), no server_version; A’s own update applies', async () => {
      const A = randomUUID()
      const B = randomUUID()
      const { id } = await createOrder(A, { ship_address: 'secret-106' })
      const before = await rowText('orders', id)
      const r = await pushAs(B, [
        { id, table_name: 'orders', operation: 'update', data: { ship_address: 'pwned' }, client_updated_at: future() },
        { id, table_name: 'orders', operation: 'delete' },
      ])
      // The superuser pool sees the row exists; the RLS role cannot see other users' rows at all.
      const reason = mode.rls ? 'record_not_found' : 'forbidden'
      expect(r.body.rejected.map((x: PushResult) => [x.status, x.reason_code])).toEqual([
        ['rejected_terminal', reason],
        ['rejected_terminal', reason],
      ])
      for (const x of r.body.rejected) expect(x).not.toHaveProperty('server_version')
      expect(JSON.stringify(r.body)).not.toContain('secret-106')
      expect(await rowText('orders', id)).toBe(before)
      const own = await one(A, {
        id,
        table_name: 'orders',
        operation: 'update',
        data: { ship_address: 'mine' },
        client_updated_at: future(),
      })
      expect(own.status).toBe('applied')
    })

    it('107 B creating an order with user_id = A → stored as B’s', async () => {
      const A = randomUUID()
      const B = randomUUID()
      const id = randomUUID()
      const r = await one(B, { id, table_name: 'orders', operation: 'create', data: { user_id: A } })
      expect(r.status).toBe('applied')
      expect((await row('orders', id))?.user_id).toBe(B)
    })

    it('108 B creating order_details under A’s order → rejected_terminal forbidden', async () => {
      const A = randomUUID()
      const B = randomUUID()
      const { id: orderId } = await createOrder(A)
      const id = randomUUID()
      const r = await one(B, { id, table_name: 'order_details', operation: 'create', data: { order_id: orderId } })
      expect(r).toMatchObject({ status: 'rejected_terminal', reason_code: 'forbidden' })
      expect(r).not.toHaveProperty('server_version')
      expect(await row('order_details', id)).toBeUndefined()
    })

    it('109 B creating with the id of A’s order → rejected_terminal forbidden, no server_version', async () => {
      const A = randomUUID()
      const B = randomUUID()
      const { id } = await createOrder(A, { ship_address: 'secret-109' })
      const before = await rowText('orders', id)
      const r = await one(B, { id, table_name: 'orders', operation: 'create', data: {}, client_updated_at: future() })
      expect(r).toEqual({
        id,
        table_name: 'orders',
        operation: 'create',
        status: 'rejected_terminal',
        reason_code: 'forbidden',
        message: expect.any(String),
      })
      expect(await rowText('orders', id)).toBe(before)
    })

    it('110 updating / deleting a global category → rejected_terminal forbidden', async () => {
      const u = randomUUID()
      const id = '00000000-0000-4000-8000-000000000101'
      const before = await rowText('categories', id)
      const r = await pushAs(u, [
        { id, table_name: 'categories', operation: 'update', data: { name: 'mine' }, client_updated_at: future() },
        { id, table_name: 'categories', operation: 'delete' },
        { id, table_name: 'categories', operation: 'create', data: { name: 'mine' }, client_updated_at: future() },
      ])
      expect(r.body.rejected.map((x: PushResult) => [x.status, x.reason_code, 'server_version' in x])).toEqual([
        ['rejected_terminal', 'forbidden', false],
        ['rejected_terminal', 'forbidden', false],
        ['rejected_terminal', 'forbidden', false],
      ])
      expect(await rowText('categories', id)).toBe(before)
      // The caller's own categories are writable.
      const mine = randomUUID()
      expect(
        (await one(u, { id: mine, table_name: 'categories', operation: 'create', data: { name: 'x' } })).status,
      ).toBe('applied')
    })

    it.runIf(mode.rls)(
      '112 push-disabled tables have no write policy: the app role cannot write them at all',
      async () => {
        await expect((rolePool as pg.Pool).query(`INSERT INTO products (name) VALUES ('x')`)).rejects.toMatchObject({
          code: '42501',
        })
      },
    )
  })

  describe('cross-user attack (Decision 6)', () => {
    it('B’s update / delete / create-child / create-same-id / resurrect on A’s and global rows: all rejected, nothing leaks, A’s rows byte-for-byte unchanged', async () => {
      const A = randomUUID()
      const B = randomUUID()
      const SECRET = 'secret-of-A-7f3a'
      const live = await createOrder(A, { ship_address: SECRET, metadata: { secret: SECRET } })
      const gone = await createOrder(A, { ship_address: SECRET })
      await one(A, { id: gone.id, table_name: 'orders', operation: 'delete' })
      const detail = randomUUID()
      await one(A, {
        id: detail,
        table_name: 'order_details',
        operation: 'create',
        data: { order_id: live.id, product_name: SECRET },
      })
      const cat = randomUUID()
      await one(A, { id: cat, table_name: 'categories', operation: 'create', data: { name: SECRET } })
      const globalCat = '00000000-0000-4000-8000-000000000102'
      const targets: [string, string][] = [
        ['orders', live.id],
        ['orders', gone.id],
        ['order_details', detail],
        ['categories', cat],
        ['categories', globalCat],
      ]
      const snapshot = async () => Promise.all(targets.map(([t, id]) => rowText(t, id)))
      const before = await snapshot()
      const f = future()
      const attacks: Record<string, unknown>[] = []
      for (const [table_name, id] of targets) {
        attacks.push(
          { id, table_name, operation: 'update', data: { ship_address: 'x', name: 'x' }, client_updated_at: f },
          { id, table_name, operation: 'update', data: {}, client_updated_at: f, base_updated_at: f },
          { id, table_name, operation: 'delete' },
          { id, table_name, operation: 'create', data: { user_id: B }, client_updated_at: f },
        )
      }
      attacks.push(
        { id: randomUUID(), table_name: 'order_details', operation: 'create', data: { order_id: live.id } },
        { id: randomUUID(), table_name: 'order_details', operation: 'create', data: { order_id: gone.id } },
        { id: detail, table_name: 'order_details', operation: 'update', data: { order_id: randomUUID() } },
      )
      const r = await pushAs(B, attacks)
      expect(r.status).toBe(200)
      expect(r.body.accepted).toEqual([])
      expect(r.body.rejected).toHaveLength(attacks.length)
      for (const x of r.body.rejected) {
        expect(x.status).toBe('rejected_terminal')
        expect(['record_not_found', 'forbidden']).toContain(x.reason_code)
        expect(x).not.toHaveProperty('server_version')
        expect(x).not.toHaveProperty('server_updated_at')
      }
      const text = JSON.stringify(r.body)
      expect(text).not.toContain(SECRET)
      expect(text).not.toContain(A)
      expect(await snapshot()).toEqual(before)
      // The same body from A (without the child of someone else's order) shows the rows were really reachable.
      const own = await one(A, {
        id: live.id,
        table_name: 'orders',
        operation: 'update',
        data: { total_cents: 1 },
        client_updated_at: future(),
      })
      expect(own.status).toBe('applied')
    })
  })

  describe('identity, types and hostile input', () => {
    it('A.5 upper-case X-User-ID → created row’s user_id is lower-case', async () => {
      const upper = randomUUID().toUpperCase()
      const id = randomUUID()
      const r = await one(upper, { id, table_name: 'orders', operation: 'create', data: {} })
      expect(r.status).toBe('applied')
      expect((await row('orders', id))?.user_id).toBe(upper.toLowerCase())
    })

    it('Decisions 23 / 27: JSON-typed columns take JSON values, arrays from JSON arrays, bytea as \\x hex; pushed values round-trip', async () => {
      const u = randomUUID()
      const id = randomUUID()
      const data = {
        blob: '\\x00ff10',
        nums: [1, 2, 3],
        doc: { nested: [true, null, 'x'] },
        amount: 1234.5678,
        day: '2026-03-01',
        at_time: '10:30:00',
        stamp: '2026-03-05T12:00:00.123456+00:00',
        flag: true,
        status: 'delivered',
        big: 9007199254740991,
      }
      const r = await one(u, { id, table_name: 'push_types', operation: 'create', data })
      expect(r.status).toBe('applied')
      const { rows } = await db.query(
        `SELECT to_jsonb(t) - 'created_at' - 'updated_at' - 'deleted_at' - 'id' - 'user_id' AS j
           FROM push_types t WHERE id = $1`,
        [id],
      )
      const j = rows[0].j
      expect({ ...j, stamp: j.stamp.replace(/[+-]\d\d:\d\d$/, '') }).toEqual({
        ...data,
        stamp: '2026-03-05T12:00:00.123456',
      })
      const up = await one(u, {
        id,
        table_name: 'push_types',
        operation: 'update',
        data: { nums: [], blob: null, doc: [1, { a: 2 }] },
        client_updated_at: future(),
      })
      expect(up.status).toBe('applied')
      expect(await row('push_types', id)).toMatchObject({ nums: [], blob: null, doc: [1, { a: 2 }] })
    })

    it('hostile table names, data keys, ids, huge strings and wrong types: per-record rejections, never a 500', async () => {
      const u = randomUUID()
      const huge = 'x'.repeat(2_000_000)
      const hostileKeys = {
        ...JSON.parse('{"__proto__":{"polluted":1}}'),
        'a"; DROP TABLE orders; --': 1,
        '"': 2,
        ship_address: huge,
      }
      const cases: [Record<string, unknown>, string][] = [
        [{ table_name: 'orders; DROP TABLE orders', operation: 'create', data: {} }, 'table_not_registered'],
        [{ table_name: '"', operation: 'create', data: {} }, 'table_not_registered'],
        [{ table_name: 'ördérs 💥', operation: 'create', data: {} }, 'table_not_registered'],
        [{ table_name: '__proto__', operation: 'create', data: {} }, 'table_not_registered'],
        [{ table_name: 'orders', operation: 'create', data: hostileKeys }, 'applied'],
        [{ id: 'not-a-uuid', table_name: 'orders', operation: 'create', data: {} }, 'invalid_data'],
        [{ id: "1'; DROP TABLE orders; --", table_name: 'orders', operation: 'update', data: {} }, 'invalid_data'],
        [{ id: '', table_name: 'orders', operation: 'delete' }, 'invalid_data'],
        [{ table_name: 'orders', operation: 'create', data: { total_cents: 'abc' } }, 'invalid_data'],
        [{ table_name: 'orders', operation: 'create', data: { total_cents: 1.5 } }, 'invalid_data'],
        [{ table_name: 'orders', operation: 'create', data: { total_cents: 1e30 } }, 'invalid_data'],
        [{ table_name: 'orders', operation: 'create', data: { required_date: '2026-02-30' } }, 'invalid_data'],
        [{ table_name: 'orders', operation: 'create', data: { ship_address: 'nul\u0000byte' } }, 'invalid_data'],
        [{ table_name: 'orders', operation: 'create', data: { status: null } }, 'constraint_violation'],
        // metadata is jsonb: a JSON string is a valid jsonb value (Decision 23).
        [{ table_name: 'orders', operation: 'create', data: { metadata: 'just a string' } }, 'applied'],
        [{ table_name: 'order_details', operation: 'create', data: { quantity: { a: 1 } } }, 'invalid_data'],
        [{ table_name: 'orders', operation: 'create', data: { ship_address: 'ok ✓ 💥 ☃' } }, 'applied'],
        // A lone surrogate cannot be stored as UTF-8: terminal, not retryable.
        [{ table_name: 'orders', operation: 'create', data: { ship_address: 'bad \ud800' } }, 'invalid_data'],
        [{ table_name: 'order_details', operation: 'create', data: { order_id: randomUUID() } }, 'forbidden'],
        [{ table_name: 'categories', operation: 'create', data: { search_tags: ['a', 'b"c', '{d}'] } }, 'applied'],
        [{ table_name: 'categories', operation: 'create', data: { search_tags: 'no array' } }, 'invalid_data'],
      ]
      const changes = cases.map(
        ([c]) => ({ id: randomUUID(), ...c }) as { id: string; table_name: string; operation: string; data: unknown },
      )
      const r = await pushAs(u, changes)
      expect(r.status).toBe(200)
      const got = new Map<string, string>()
      for (const x of [...r.body.accepted, ...r.body.rejected]) {
        got.set(`${x.table_name}|${x.id}`, x.status === 'applied' ? 'applied' : `${x.reason_code}`)
        if (x.status !== 'applied' && x.status !== 'conflict') expect(x.status).toBe('rejected_terminal')
      }
      expect(changes.map((c, i) => `${i} ${got.get(`${c.table_name}|${c.id}`)}`)).toEqual(
        cases.map(([, want], i) => `${i} ${want}`),
      )
      expect((await row('orders', changes[4]?.id as string))?.ship_address).toHaveLength(huge.length)
      expect((await row('categories', changes[19]?.id as string))?.search_tags).toEqual(['a', 'b"c', '{d}'])
      const { rows } = await db.query(`SELECT to_regclass('orders') IS NOT NULL AS ok`)
      expect(rows[0].ok).toBe(true)
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    })

    it('Decision 18: more than 1000 changes → 400 (HTTP and engine); a body over the limit → 413', async () => {
      const u = randomUUID()
      const clientId = await client(u)
      const changes = Array.from({ length: 1001 }, () => ({
        id: randomUUID(),
        table_name: 'orders',
        operation: 'create',
      }))
      const r = await pushAs(u, changes)
      expect(r.status).toBe(400)
      const { engine, call: small } = await makeCaller({}, { bodyLimit: 1024 })
      await expect(
        engine.push(u, { client_id: clientId, schema_version: V, schema_hash: H, changes: changes as never }),
      ).rejects.toBeInstanceOf(BadRequestError)
      const big = await pushAs(
        u,
        [{ id: randomUUID(), table_name: 'orders', operation: 'create', data: { ship_address: 'y'.repeat(2048) } }],
        small,
      )
      expect(big.status).toBe(413)
      expect(big.body).toEqual({ error: expect.any(String) })
    })

    it('a batch of 1000 creates then 1000 updates in one push each', async () => {
      const u = randomUUID()
      const ids = Array.from({ length: 1000 }, () => randomUUID())
      const created = await pushAs(
        u,
        ids.map((id, i) => ({ id, table_name: 'orders', operation: 'create', data: { total_cents: i } })),
      )
      expect(created.body.accepted).toHaveLength(1000)
      const updated = await pushAs(
        u,
        ids.map((id, i) => ({
          id,
          table_name: 'orders',
          operation: 'update',
          data: { total_cents: i + 1 },
          client_updated_at: future(),
        })),
      )
      expect(updated.body.accepted).toHaveLength(1000)
      const { rows } = await db.query('SELECT sum(total_cents)::int AS s FROM orders WHERE user_id = $1', [u])
      expect(rows[0].s).toBe((1000 * 1001) / 2)
    })
  })
})

/** µs since the epoch of an RFC 3339 UTC stamp (string compare breaks when trailing zeros were trimmed). */
function micros(ts: string): bigint {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(ts)
  if (!m) throw new Error(`bad stamp ${ts}`)
  return BigInt(Date.parse(`${m[1]}Z`)) * 1000n + BigInt((m[2] ?? '').padEnd(6, '0'))
}
