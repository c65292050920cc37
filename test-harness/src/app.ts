import { randomUUID } from 'node:crypto'
import type { TableConfig } from '@synchro/server'
import {
  type Authenticator,
  createEngine,
  createSyncHandler,
  type Engine,
  type EngineOptions,
  headerAuth,
  Registry,
  type SyncHandlerOptions,
} from '@synchro/server'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES, registerNorthwind } from './northwind.js'
import { createTestDatabase, type TestDatabase } from './pg.js'

export interface TestApp {
  db: TestDatabase
  engine: Engine
  handler: (r: Request) => Promise<Response>
  /** Calls the handler with a JSON body (no port). */
  call(
    method: string,
    path: string,
    opts?: { user?: string; body?: unknown; raw?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Headers }>
  /** Registers client `clientId` for `user` with the bootstrap pair and returns the current schema pair. */
  registerClient(
    user: string,
    clientId?: string,
  ): Promise<{ clientId: string; version: number; hash: string; id: string }>
  close(): Promise<void>
}

export interface TestAppOptions {
  tables?: TableConfig[]
  seed?: boolean
  engine?: Partial<EngineOptions>
  handler?: Partial<SyncHandlerOptions>
  authenticate?: Authenticator
  /** Extra SQL run after the Northwind DDL (before the engine starts). */
  extraSql?: string
  /** Reuse an existing database instead of creating one. */
  db?: TestDatabase
}

/** A fresh database with the Northwind schema, an engine and a handler (header auth by default). */
export async function createTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const db = opts.db ?? (await createTestDatabase())
  await db.pool.query(NORTHWIND_SQL)
  if (opts.seed) await db.pool.query(NORTHWIND_SEED_SQL)
  if (opts.extraSql) await db.pool.query(opts.extraSql)
  const registry = registerNorthwind(new Registry(), opts.tables ?? NORTHWIND_TABLES)
  const engine = await createEngine({ pool: db.pool, registry, ...opts.engine })
  const handler = createSyncHandler(engine, { authenticate: opts.authenticate ?? headerAuth(), ...opts.handler })
  const call: TestApp['call'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) }
    if (o.user !== undefined) headers['x-user-id'] = o.user
    let body: string | undefined
    if (o.raw !== undefined) body = o.raw
    else if (o.body !== undefined) body = JSON.stringify(o.body)
    if (body !== undefined) headers['content-type'] = 'application/json'
    const res = await handler(new Request(`http://test${path}`, { method, headers, body }))
    const text = await res.text()
    let parsed: unknown = text
    try {
      parsed = JSON.parse(text)
    } catch {}
    return { status: res.status, body: parsed, headers: res.headers }
  }
  return {
    db,
    engine,
    handler,
    call,
    async registerClient(user, clientId = randomUUID()) {
      const r = await call('POST', '/sync/register', {
        user,
        body: { client_id: clientId, platform: 'test', app_version: '1.0.0', schema_version: 0, schema_hash: '' },
      })
      if (r.status !== 200) throw new Error(`register failed: ${r.status} ${JSON.stringify(r.body)}`)
      return { clientId, version: r.body.schema_version, hash: r.body.schema_hash, id: r.body.id }
    },
    async close() {
      await engine.close()
      if (!opts.db) await db.drop()
    },
  }
}
