import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toNodeListener } from '../http/node.js'
import { FRAME_MAX_ENTRIES } from './frames.js'

// Live data frames over a real socket: the handler on node:http, real PostgreSQL. Changelog entries are written by
// hand next to real rows (no WAL consumer), and the head is polled every 20 ms.
let app: TestApp
let server: http.Server
let base: string
beforeAll(async () => {
  app = await createTestApp({ seed: true, engine: { live: { listen: false, pollIntervalMs: 20 } } })
  server = http.createServer(toNodeListener(app.handler))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}, 120_000)
afterAll(async () => {
  server?.closeAllConnections()
  await new Promise((r) => server?.close(r))
  await app?.close()
})

interface Event {
  event: string
  data: any
}

/** One open event stream: its events so far, and a wait for the next ones. */
async function open(user: string, query: string) {
  const ac = new AbortController()
  const res = await fetch(`${base}/sync/events?${query}`, { headers: { 'x-user-id': user }, signal: ac.signal })
  expect(res.status).toBe(200)
  const events: Event[] = []
  const waiters: (() => void)[] = []
  void (async () => {
    const decoder = new TextDecoder()
    let buf = ''
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true })
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const event = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          if (event) events.push({ event, data: data ? JSON.parse(data) : undefined })
          for (const w of waiters.splice(0)) w()
        }
      }
    } catch {
      // aborted
    }
  })()
  const next = (n: number) =>
    new Promise<Event[]>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no event #${n} (got ${JSON.stringify(events)})`)), 10_000)
      const check = () => {
        if (events.length >= n) {
          clearTimeout(t)
          resolve(events.slice(0, n))
        } else waiters.push(check)
      }
      check()
    })
  return { events, next, close: () => ac.abort() }
}

/** A registered client that has pulled up to the head: its checkpoint. */
async function caughtUp(user: string): Promise<{ clientId: string; checkpoint: number; pair: object }> {
  const reg = await app.registerClient(user)
  const pair = { schema_version: reg.version, schema_hash: reg.hash }
  let checkpoint = await head()
  // A pull sets the stored checkpoint (otherwise the first pull asks for a snapshot).
  await app.db.pool.query('UPDATE sync_clients SET last_pull_seq = $1 WHERE id = $2', [checkpoint, reg.id])
  const p = await pull(user, reg.clientId, checkpoint, pair)
  checkpoint = p.checkpoint
  return { clientId: reg.clientId, checkpoint, pair }
}

async function pull(user: string, clientId: string, checkpoint: number, pair: object) {
  const r = await app.call('POST', '/sync/pull', {
    user,
    body: { client_id: clientId, checkpoint, limit: 1000, ...pair },
  })
  expect(r.status).toBe(200)
  return r.body
}

const head = async () =>
  Number(
    (await app.db.pool.query<{ s: string }>('SELECT coalesce(max(seq), 0)::text AS s FROM sync_changelog')).rows[0]?.s,
  )

/** Changes rows and writes their changelog entries in one transaction (as the capture would); returns the head. */
async function change(sql: string, params: unknown[], entries: { bucket: string; table: string }[]): Promise<number> {
  const db = await app.db.pool.connect()
  try {
    await db.query('BEGIN')
    const { rows } = await db.query<{ id: string }>(sql, params)
    let seq = 0
    for (const e of entries) {
      for (const r of rows) {
        const ins = await db.query<{ seq: string }>(
          `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, $2, $3, 2) RETURNING seq::text`,
          [e.bucket, e.table, r.id],
        )
        seq = Number(ins.rows[0]?.seq)
      }
    }
    await db.query('COMMIT')
    return seq
  } finally {
    db.release()
  }
}

const productId = async () =>
  (await app.db.pool.query<{ id: string }>('SELECT id::text AS id FROM products LIMIT 1')).rows[0]?.id

describe('live data frames (GET /sync/events?frames=1)', () => {
  // First in the file: the engine's notifier has not started yet.
  it('a change committed after the stream is ready arrives as a frame, however late the first head read returns', async () => {
    const u = randomUUID()
    const a = await caughtUp(u)
    const id = await productId()
    // Hold the notifier's first head read until released.
    const pool = app.engine.ctx.pool
    const query = pool.query
    let release = () => {}
    const released = new Promise<void>((r) => {
      release = r
    })
    let held = false
    pool.query = ((...args: unknown[]) => {
      const q = args[0] as string | { text?: string }
      const text = typeof q === 'string' ? q : q?.text
      if (!held && text === 'SELECT coalesce(max(seq), 0)::text AS seq FROM sync_changelog') {
        held = true
        return released.then(() => (query as (...a: unknown[]) => unknown).apply(pool, args))
      }
      return (query as (...a: unknown[]) => unknown).apply(pool, args)
    }) as typeof pool.query
    const update = () =>
      change(
        "UPDATE products SET name = 'first', updated_at = now() WHERE id = $1 RETURNING id::text",
        [id],
        [{ bucket: 'global', table: 'products' }],
      )
    try {
      const opened = open(u, `client_id=${a.clientId}&checkpoint=${a.checkpoint}&frames=1`).then(async (s) => {
        await s.next(1)
        return s
      })
      const first = await Promise.race([
        opened.then(() => 'ready' as const),
        new Promise<'held'>((r) => setTimeout(() => r('held'), 300)),
      ])
      let seq: number
      if (first === 'ready') {
        // Ready while the head is still unknown: the change commits before the notifier reads the head.
        seq = await update()
        release()
      } else {
        release()
        await opened
        seq = await update()
      }
      const s = await opened
      const [, event] = await s.next(2)
      expect(event).toMatchObject({ event: 'page', data: { from: a.checkpoint, to: seq } })
      s.close()
    } finally {
      release()
      pool.query = query
    }
  })

  it('a shared-bucket change reaches every stream as one page, equal to the pull from the same checkpoint', async () => {
    const [u1, u2] = [randomUUID(), randomUUID()]
    const a = await caughtUp(u1)
    const b = await caughtUp(u2)
    const sa = await open(u1, `client_id=${a.clientId}&checkpoint=${a.checkpoint}&frames=1`)
    const sb = await open(u2, `client_id=${b.clientId}&checkpoint=${b.checkpoint}&frames=1`)
    await Promise.all([sa.next(1), sb.next(1)])
    const id = await productId()
    const seq = await change(
      "UPDATE products SET name = 'framed', updated_at = now() WHERE id = $1 RETURNING id::text",
      [id],
      [{ bucket: 'global', table: 'products' }],
    )
    const [, fa] = await sa.next(2)
    const [, fb] = await sb.next(2)
    expect(fa?.event).toBe('page')
    expect(fa?.data).toMatchObject({ from: a.checkpoint, to: seq, deletes: [] })
    expect(fa?.data.changes.map((c: any) => [c.table_name, c.id, c.data.name])).toEqual([['products', id, 'framed']])
    // Same range for both: the same rendered body after `from`.
    expect({ ...fb?.data, from: 0 }).toEqual({ ...fa?.data, from: 0 })
    // Field for field what a pull from the frame's start returns.
    const p = await pull(u1, a.clientId, a.checkpoint, a.pair)
    expect(p.checkpoint).toBe(seq)
    expect(fa?.data.changes).toEqual(p.changes)
    expect(fa?.data).toMatchObject({ schema_version: p.schema_version, schema_hash: p.schema_hash })
    sa.close()
    sb.close()
  })

  it('a row under a read predicate is rendered per user: the owner gets it in a frame, another user only a poke', async () => {
    const [owner, other] = [randomUUID(), randomUUID()]
    const a = await caughtUp(owner)
    const b = await caughtUp(other)
    const sa = await open(owner, `client_id=${a.clientId}&checkpoint=${a.checkpoint}&frames=1`)
    const sb = await open(other, `client_id=${b.clientId}&checkpoint=${b.checkpoint}&frames=1`)
    await Promise.all([sa.next(1), sb.next(1)])
    // An owner-only order announced in the shared bucket: the same range, different read access.
    const seq = await change(
      "INSERT INTO orders (user_id, ship_address) VALUES ($1, 'secret') RETURNING id::text",
      [owner],
      [{ bucket: 'global', table: 'orders' }],
    )
    const [, fa] = await sa.next(2)
    const [, fb] = await sb.next(2)
    expect(fa?.data).toMatchObject({ from: a.checkpoint, to: seq })
    expect(fa?.data.changes.map((c: any) => c.data.ship_address)).toEqual(['secret'])
    // A row the render could not read never travels as a frame: the other user is poked and pulls (which leaves the
    // row out, as always).
    expect(fb).toEqual({ event: 'poke', data: { seq } })
    sa.close()
    sb.close()
  })

  it('frames chain: the next page starts where the last event ended, also across ranges that did not touch the stream', async () => {
    const u = randomUUID()
    const a = await caughtUp(u)
    const s = await open(u, `client_id=${a.clientId}&checkpoint=${a.checkpoint}&frames=1`)
    await s.next(1)
    const id = await productId()
    const update = (name: string) =>
      change(
        'UPDATE products SET name = $2, updated_at = now() WHERE id = $1 RETURNING id::text',
        [id, name],
        [{ bucket: 'global', table: 'products' }],
      )
    const first = await update('one')
    await s.next(2)
    // Someone else's bucket moves the head; this stream hears nothing of it.
    await change(
      'INSERT INTO orders (user_id) VALUES ($1) RETURNING id::text',
      [randomUUID()],
      [{ bucket: `user:${randomUUID()}`, table: 'orders' }],
    )
    const second = await update('two')
    const [, , f2] = await s.next(3)
    expect(f2).toMatchObject({ event: 'page', data: { from: first, to: second } })
    expect(f2?.data.changes.map((c: any) => c.data.name)).toEqual(['two'])
    s.close()
  })

  it('pokes instead: without frames=1, without a checkpoint (first event), and for a range too big for a frame', async () => {
    const u = randomUUID()
    const a = await caughtUp(u)
    const plain = await open(u, `client_id=${a.clientId}&checkpoint=${a.checkpoint}`)
    const noCheckpoint = await open(u, `client_id=${a.clientId}&frames=1`)
    await Promise.all([plain.next(1), noCheckpoint.next(1)])
    const id = await productId()
    const seq = await change(
      "UPDATE products SET name = 'p', updated_at = now() WHERE id = $1 RETURNING id::text",
      [id],
      [{ bucket: 'global', table: 'products' }],
    )
    expect((await plain.next(2))[1]).toEqual({ event: 'poke', data: { seq } })
    expect((await noCheckpoint.next(2))[1]).toEqual({ event: 'poke', data: { seq } })
    plain.close()
    // One range with more entries than a frame carries.
    const big = await change(
      'SELECT id::text FROM products CROSS JOIN generate_series(1, $1) LIMIT $1',
      [FRAME_MAX_ENTRIES + 1],
      [{ bucket: 'global', table: 'products' }],
    )
    expect((await noCheckpoint.next(3))[2]).toEqual({ event: 'poke', data: { seq: big } })
    noCheckpoint.close()
  })

  it('a stream that is not read is ended once its unsent bytes pass the bound (memory stays bounded)', async () => {
    const u = randomUUID()
    const a = await caughtUp(u)
    const url = new URL(`${base}/sync/events?client_id=${a.clientId}&checkpoint=${a.checkpoint}&frames=1`)
    const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get(url, { headers: { 'x-user-id': u } }, resolve).on('error', reject),
    )
    res.pause()
    const id = await productId()
    // 100 frames of ~150 KB: far more than the socket buffers and the stream's own bound hold.
    const changes = 100
    for (let i = 0; i < changes; i++) {
      const name = `${i}-${'x'.repeat(150_000)}`
      await change(
        'UPDATE products SET name = $2, updated_at = now() WHERE id = $1 RETURNING id::text',
        [id, name],
        [{ bucket: 'global', table: 'products' }],
      )
      await new Promise((r) => setTimeout(r, 25))
    }
    // Reading again: what was queued arrives, then the stream ends by itself (the server dropped it).
    let pages = 0
    let text = ''
    const ended = new Promise<void>((resolve) => res.on('end', resolve))
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => {
      text += chunk
      for (let i = text.indexOf('\n\n'); i >= 0; i = text.indexOf('\n\n')) {
        if (text.startsWith('event: page')) pages++
        text = text.slice(i + 2)
      }
    })
    res.resume()
    await ended
    expect(pages).toBeGreaterThan(0)
    expect(pages).toBeLessThan(changes)
  }, 60_000)
})
