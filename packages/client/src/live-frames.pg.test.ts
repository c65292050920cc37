/**
 * Live data frames end to end: real PostgreSQL, the real server (NOTIFY/LISTEN, WAL consumer) over node:http, a
 * SynchroClient on SQLite. The client's fetch is tapped: it counts pulls and can drop a frame from the event stream.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeClient, waitFor } from '../test/helpers.js'
import { type PgServer, startPgServer, stopAll } from '../test/pg-server.js'
import type { SynchroClient } from './client.js'
import { type LiveFrame, LivePosition } from './sync/frames.js'
import type { FetchLike } from './sync/transport.js'

let server: PgServer
const clients: SynchroClient[] = []

beforeAll(async () => {
  server = await startPgServer('synchro_live_frames')
}, 120_000)
afterAll(() => stopAll(clients, server), 60_000)

/** Counts pulls; forwards the event stream block by block, dropping the next `page` when asked to. */
function tap() {
  const seen = {
    pulls: 0,
    pages: [] as { from: number; to: number }[],
    dropped: 0,
    dropNext: false,
    /** Empty the next page's changes: a frame that lacks an entry it should carry. */
    hollowNext: false,
  }
  const fetchTap: FetchLike = async (input, init) => {
    const url = String(input)
    if (url.endsWith('/sync/pull')) seen.pulls++
    const res = await fetch(input, init)
    if (!url.includes('/sync/events') || !res.body) return res
    const reader = res.body.getReader()
    const enc = new TextEncoder()
    const dec = new TextDecoder()
    let buf = ''
    const body = new ReadableStream<Uint8Array>({
      // Until something was forwarded: a pull that enqueues nothing is not called again.
      async pull(ctrl) {
        for (let sent = false; !sent; ) {
          const { done, value } = await reader.read()
          if (done) return ctrl.close()
          buf += dec.decode(value, { stream: true })
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const block = buf.slice(0, i + 2)
            buf = buf.slice(i + 2)
            if (block.startsWith('event: page')) {
              const data = JSON.parse(block.slice(block.indexOf('data: ') + 6))
              seen.pages.push({ from: data.from, to: data.to })
              if (seen.dropNext) {
                seen.dropNext = false
                seen.dropped++
                continue
              }
              if (seen.hollowNext) {
                seen.hollowNext = false
                ctrl.enqueue(enc.encode(`event: page\ndata: ${JSON.stringify({ ...data, changes: [] })}\n\n`))
                sent = true
                continue
              }
            }
            ctrl.enqueue(enc.encode(block))
            sent = true
          }
        }
      },
      cancel: (r) => reader.cancel(r),
    })
    return new Response(body, { status: res.status, headers: res.headers })
  }
  return { seen, fetch: fetchTap }
}

async function liveClient(t: ReturnType<typeof tap>) {
  const c = makeClient(server.url, {
    userID: randomUUID(),
    clientID: `live-${randomUUID()}`,
    live: true,
    fetch: t.fetch,
  })
  clients.push(c)
  const changes: string[][] = []
  c.onChange(['products'], (tables) => changes.push(tables))
  await c.start()
  await c.syncNow()
  // The stream is open once the first frame can reach it: wait for the 'ready' round trip by a settled pull count.
  await waitFor(async () => (await c.query('SELECT id FROM products')).length === 5, 10_000, 'bootstrap')
  await new Promise((r) => setTimeout(r, 300))
  return { c, changes }
}

const rename = async (name: string, n = 0) => {
  await server.db.pool.query(
    `UPDATE products SET name = $1, updated_at = clock_timestamp() WHERE id = (SELECT id FROM products ORDER BY id OFFSET $2 LIMIT 1)`,
    [name, n],
  )
}
const has = async (c: SynchroClient, name: string) =>
  (await c.query('SELECT 1 FROM products WHERE name = ?', [name])).length === 1

describe('live data frames (SDK)', () => {
  it('a change arrives as a frame, is applied exactly once, and needs no pull', async () => {
    const t = tap()
    const { c, changes } = await liveClient(t)
    const pulls = t.seen.pulls
    const before = changes.length
    await rename(`framed-${randomUUID()}`)
    const name = (await server.db.pool.query<{ name: string }>('SELECT name FROM products ORDER BY id LIMIT 1')).rows[0]
      ?.name as string
    await waitFor(() => has(c, name), 10_000, 'the renamed product')
    // Settle: anything that would follow (a duplicate apply, a fallback pull) has had its chance.
    await new Promise((r) => setTimeout(r, 300))
    expect(t.seen.pages.length).toBeGreaterThanOrEqual(1)
    expect(t.seen.pulls).toBe(pulls)
    expect(changes.length - before).toBe(1)
  })

  it('a lost frame leaves a gap: the next frame does not start where the client stands, so it pulls both changes', async () => {
    const t = tap()
    const { c } = await liveClient(t)
    const pulls = t.seen.pulls
    const [one, two] = [`lost-${randomUUID()}`, `after-${randomUUID()}`]
    t.seen.dropNext = true
    await rename(one, 1)
    await waitFor(() => t.seen.dropped === 1, 10_000, 'the dropped frame')
    await rename(two, 2)
    await waitFor(async () => (await has(c, one)) && (await has(c, two)), 10_000, 'both renamed products')
    expect(t.seen.pulls).toBeGreaterThan(pulls)
    const [lost, next] = t.seen.pages.slice(-2)
    expect(next?.from).toBe(lost?.to)
  })
})

describe('live data frames never move the pull checkpoint', () => {
  it('an entry a frame lacked still arrives with the next pull', async () => {
    const t = tap()
    const { c } = await liveClient(t)
    const pages = t.seen.pages.length
    const name = `hollow-${randomUUID()}`
    t.seen.hollowNext = true
    await rename(name, 3)
    await waitFor(() => t.seen.pages.length > pages, 10_000, 'the hollow frame')
    await new Promise((r) => setTimeout(r, 300))
    expect(await has(c, name)).toBe(false)
    await c.syncNow()
    expect(await has(c, name)).toBe(true)
  })
})

describe('LivePosition', () => {
  const frame = (from: number, to: number): LiveFrame => ({
    from,
    to,
    changes: [],
    deletes: [],
    schema_version: 1,
    schema_hash: 'h',
  })

  it('applies a frame only from exactly where it stands, skips what it holds, pulls on a gap', () => {
    const p = new LivePosition()
    expect(p.decide(frame(0, 5))).toBe('pull') // nothing known yet
    p.opened(10)
    expect(p.decide(frame(10, 12))).toBe('apply')
    expect(p.decide(frame(11, 12))).toBe('pull') // starts after an unknown gap… or before us: pull
    expect(p.decide(frame(8, 10))).toBe('skip')
    p.applied(frame(10, 12))
    expect(p.decide(frame(12, 20))).toBe('apply')
    expect(p.decide(frame(10, 12))).toBe('skip') // the same frame twice: applied once
  })

  it('a caught-up pull counts from the newest head heard before it started', () => {
    const p = new LivePosition()
    p.opened(3)
    p.hear(9)
    const atStart = p.heard
    p.hear(15) // heard while pulling: the pull may or may not have seen it
    p.pulled(7, atStart)
    expect(p.decide(frame(9, 15))).toBe('apply')
    p.reset()
    expect(p.decide(frame(15, 16))).toBe('pull')
  })

  it('a stream reopened during a snapshot rebuild stands nowhere until the next pull', () => {
    const p = new LivePosition()
    p.opened(10)
    p.reset() // the rebuild starts
    p.opened(10) // the stream reopens with the checkpoint of the data being replaced
    const epoch = p.epoch
    p.reset() // the rebuild ends: its snapshot may be newer than frames from 10
    expect(p.decide(frame(10, 12))).toBe('pull')
    p.opened(10, epoch) // a checkpoint read before that reset
    expect(p.decide(frame(10, 12))).toBe('pull')
    p.pulled(20, 0)
    expect(p.decide(frame(20, 21))).toBe('apply')
  })
})
