import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { headerAuth } from '../auth/auth.js'
import { createEngine, type Engine } from '../engine/engine.js'
import { createSyncHandler } from '../http/handler.js'

/**
 * A TCP relay in front of the test PostgreSQL that can stop forwarding (a stalled database, as tests/reliability's
 * SIGSTOP does to a private instance): bytes are held while frozen and delivered on `thaw`.
 */
function relay(target: { host: string; port: number }) {
  let frozen = false
  const held: (() => void)[] = []
  const pipe = (from: net.Socket, to: net.Socket) =>
    from.on('data', (chunk) => {
      if (frozen) held.push(() => to.write(chunk))
      else to.write(chunk)
    })
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    sockets.add(client).add(upstream)
    pipe(client, upstream)
    pipe(upstream, client)
    const close = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('close', close).on('error', close)
    upstream.on('close', close).on('error', close)
  })
  return {
    listen: () =>
      new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port))),
    freeze: () => {
      frozen = true
    },
    thaw: () => {
      frozen = false
      for (const f of held.splice(0)) f()
    },
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise<void>((r) => server.close(() => r()))
    },
  }
}

describe('push under a stalled database (finite request deadline)', () => {
  let app: TestApp
  let pool: pg.Pool
  let engine: Engine
  let proxy: ReturnType<typeof relay>
  beforeAll(async () => {
    app = await createTestApp()
    const url = new URL(app.db.url)
    proxy = relay({ host: url.hostname, port: Number(url.port || 5432) })
    url.hostname = '127.0.0.1'
    url.port = String(await proxy.listen())
    pool = new pg.Pool({ connectionString: url.toString(), max: 1 })
    engine = await createEngine({ pool, registry: app.engine.ctx.registry, migrate: false })
  })
  afterAll(async () => {
    proxy?.thaw()
    await engine?.close()
    await pool?.end()
    await proxy?.close()
    await app?.close()
  })

  async function setup() {
    const handler = createSyncHandler(engine, {
      authenticate: headerAuth(),
      requestTimeoutMs: 300,
      retryAfterSeconds: 1,
    })
    const user = randomUUID()
    const reg = await app.registerClient(user)
    const pair = { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash }
    const push = (changes: unknown[]) =>
      handler(
        new Request('http://test/sync/push', {
          method: 'POST',
          headers: { 'x-user-id': user, 'content-type': 'application/json' },
          body: JSON.stringify({ ...pair, changes }),
        }),
      )
    const create = (id: string) => ({ id, table_name: 'orders', operation: 'create', data: { ship_address: 'stall' } })
    for (let i = 0; i < 3; i++) expect((await push([create(randomUUID())])).status).toBe(200)
    return { push, create, clientId: reg.clientId }
  }

  /** `send` while the relay is frozen: the answer, or 'hung' when none came within 3 s (10× the deadline). */
  async function whileStalled(send: () => Promise<Response>) {
    proxy.freeze()
    const answer = send().then((r) => r.status)
    const first = await Promise.race([answer, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 3_000))])
    proxy.thaw()
    await answer
    await new Promise((r) => setTimeout(r, 300))
    return first
  }

  it('a push whose records are all invalid (only COMMIT would go out) is answered 503 while stalled; nothing marked', async () => {
    const { push, clientId } = await setup()
    const before = await app.db.pool.query('SELECT last_push_at FROM sync_clients WHERE client_id = $1', [clientId])
    const bad = { id: randomUUID(), table_name: 'no_such_table', operation: 'create', data: {} }
    expect(await whileStalled(() => push([bad]))).toBe(503)
    const after = await app.db.pool.query('SELECT last_push_at FROM sync_clients WHERE client_id = $1', [clientId])
    expect(after.rows[0].last_push_at).toEqual(before.rows[0].last_push_at)
  })

  it('a push of creates sent while the database is stalled is answered 503 within the deadline, and not applied', async () => {
    const { push, create } = await setup() // the gate and the insert are prepared on the (only) connection
    const id = randomUUID()
    expect(await whileStalled(() => push([create(id)]))).toBe(503)
    const { rows } = await app.db.pool.query('SELECT count(*)::int AS n FROM orders WHERE id = $1', [id])
    expect(rows[0].n).toBe(0)
  })
})
