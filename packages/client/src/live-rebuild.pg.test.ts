/**
 * The live stream reconnecting while a snapshot rebuild runs, end to end (real PostgreSQL, the real server with its
 * WAL consumer, SQLite). The client's fetch is tapped: it can hold pushes (the rebuild's push is its only request
 * before it clears the tables), fail pulls, and end the event stream (the client reconnects a second later).
 *
 * A product is created and deleted on the server meanwhile: its create reaches the client as a frame starting at the
 * old checkpoint, its delete as the next event. The snapshot is taken after both and stores a checkpoint past both,
 * so the frame is older than the data: applied after the rebuild, it would bring back a row no pull ever deletes.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, waitFor } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'
import type { SynchroClientConfig } from './config.js'
import type { FetchLike } from './sync/transport.js'

let server: PgServer
const clients: SynchroClient[] = []

beforeAll(async () => {
  server = await startPgServer('synchro_live_rebuild')
}, 120_000)
afterAll(() => stopAll(clients, server), 60_000)

/**
 * Records the stream's events (`ready`s, the head each poke or page announced, the ids pages carried); holds pushes
 * while `holding` until `release()`; fails pulls while `offline`; `cut()` ends the open event stream.
 */
function tap() {
  const seen = { readies: 0, heads: [] as number[], ids: [] as string[], holding: false, held: 0, offline: false }
  let release = () => {}
  let gate = Promise.resolve()
  const hold = () => {
    gate = new Promise<void>((r) => {
      release = r
    })
  }
  let cut = () => {}
  const fetchTap: FetchLike = async (input, init) => {
    const url = String(input)
    if (url.endsWith('/sync/pull') && seen.offline) throw new TypeError('fetch failed (offline)')
    if (url.endsWith('/sync/push') && seen.holding) {
      seen.held++
      await gate
    }
    const res = await fetch(input, init)
    if (!url.includes('/sync/events') || !res.body) return res
    const reader = res.body.getReader()
    const dec = new TextDecoder()
    let buf = ''
    let closed = false
    const close = (ctrl: ReadableStreamDefaultController<Uint8Array>) => {
      if (!closed) ctrl.close()
      closed = true
    }
    const body = new ReadableStream<Uint8Array>({
      start(ctrl) {
        cut = () => {
          reader.cancel().catch(() => {})
          close(ctrl)
        }
      },
      async pull(ctrl) {
        const { done, value } = await reader.read().catch(() => ({ done: true as const, value: undefined }))
        if (done || !value) return close(ctrl)
        buf += dec.decode(value, { stream: true })
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          const data = JSON.parse(/^data: ?(.*)$/m.exec(block)?.[1] ?? '{}')
          if (block.includes('event: ready')) seen.readies++
          else if (block.includes('event: page')) {
            seen.heads.push(data.to)
            for (const r of data.changes) seen.ids.push(r.id)
          } else if (block.includes('event: poke')) seen.heads.push(data.seq)
        }
        if (!closed) ctrl.enqueue(value)
      },
      cancel: (r) => reader.cancel(r),
    })
    return new Response(body, { status: res.status, headers: res.headers })
  }
  hold()
  return {
    seen,
    fetch: fetchTap,
    release: () => {
      release()
      hold()
    },
    cut: () => cut(),
  }
}

/** A live client, bootstrapped and caught up: its stream reopens at the server's head, where its frames start. */
async function liveClient(t: ReturnType<typeof tap>, over: Partial<SynchroClientConfig> = {}): Promise<SynchroClient> {
  const c = makeClient(server.url, { clientID: `live-${randomUUID()}`, live: true, fetch: t.fetch, ...over })
  clients.push(c)
  await c.start()
  await c.syncNow()
  await waitFor(() => t.seen.readies === 1, 10_000, 'the live stream')
  await server.walCaughtUp()
  await c.syncNow()
  return c
}

describe('the live stream reconnecting during a snapshot rebuild', () => {
  it('a frame older than the rebuilt snapshot is not applied (a column added on the server, the next pull fails)', async () => {
    const t = tap()
    const user = randomUUID()
    const c = await liveClient(t, { userID: user, maxRetryAttempts: 0 })
    // The next cycle's push meets 409: migrate, then rebuild, whose first step pushes the queued order again.
    await server.db.pool.query(`ALTER TABLE orders ADD COLUMN gift_note text`)
    t.seen.holding = true
    await c.execute(`INSERT INTO orders (id, user_id, ship_address, metadata) VALUES (?, ?, 'queued', '{}')`, [
      randomUUID(),
      user,
    ])
    await waitFor(() => t.seen.held === 1, 10_000, 'the push meeting 409')
    t.release()
    await waitFor(() => t.seen.held === 2, 10_000, 'the rebuild holding its push')
    // Tables not cleared yet, the stored checkpoint the old one: the stream reconnects with it, and a product is
    // created (a frame from that checkpoint) and deleted (the next event) on the server.
    t.cut()
    await waitFor(() => t.seen.readies === 2, 10_000, 'the reopened stream')
    const ghost = randomUUID()
    await server.db.pool.query(`INSERT INTO products (id, name) VALUES ($1, 'ghost')`, [ghost])
    await waitFor(() => t.seen.ids.includes(ghost), 10_000, 'the frame with the ghost')
    const heads = t.seen.heads.length
    await server.db.pool.query(`DELETE FROM products WHERE id = $1`, [ghost])
    await waitFor(() => t.seen.heads.length > heads, 10_000, 'the event of the delete')
    // The pull that follows the rebuild in the cycle fails (the network drops): the cycle ends without one, and
    // whatever the stream brought meanwhile is decided again.
    t.seen.holding = false
    t.seen.offline = true
    t.release()
    await waitFor(() => c.status.status === 'error', 10_000, 'the cycle failing after the rebuild')
    await new Promise((r) => setTimeout(r, 300))
    t.seen.offline = false
    await server.walCaughtUp()
    await c.syncNow()
    expect(await c.pendingChangeCount()).toBe(0)
    expect(await c.query('SELECT id FROM products WHERE id = ?', [ghost])).toEqual([])
    expect((await c.query('SELECT id FROM products')).length).toBe(5)
  })
})
