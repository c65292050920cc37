import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

let app: TestApp
beforeAll(async () => {
  app = await createTestApp({ engine: { live: { listen: false, pollIntervalMs: 20 } } })
})
afterAll(async () => {
  await app.close()
})

/** Reads SSE events from a response body until `until` returns true or the timeout passes. */
async function readEvents(
  res: Response,
  until: (events: { event: string; data: string }[]) => boolean,
  timeoutMs = 5000,
) {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  const events: { event: string; data: string }[] = []
  let buf = ''
  const deadline = Date.now() + timeoutMs
  while (!until(events) && Date.now() < deadline) {
    const chunk = await Promise.race([
      reader.read(),
      new Promise<{ done: true; value: undefined }>((r) =>
        setTimeout(() => r({ done: true, value: undefined }), deadline - Date.now()),
      ),
    ])
    if (chunk.done) break
    buf += decoder.decode(chunk.value, { stream: true })
    let i = buf.indexOf('\n\n')
    while (i >= 0) {
      const block = buf.slice(0, i)
      buf = buf.slice(i + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1] ?? ''
      if (event) events.push({ event, data })
      i = buf.indexOf('\n\n')
    }
  }
  await reader.cancel()
  return events
}

async function entry(bucket: string): Promise<number> {
  const { rows } = await app.db.pool.query<{ seq: string }>(
    `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation) VALUES ($1, 'orders', gen_random_uuid()::text, 1)
     RETURNING seq::text`,
    [bucket],
  )
  return Number(rows[0]?.seq)
}

describe('GET /sync/events (live pokes, extension)', () => {
  it('streams ready, then a poke when the caller’s bucket gets entries — not for other users’ buckets', async () => {
    const { clientId } = await app.registerClient('alice')
    const res = await app.handler(
      new Request(`http://t/sync/events?client_id=${clientId}`, { headers: { 'x-user-id': 'alice' } }),
    )
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const ready = readEvents(res, (e) => e.some((x) => x.event === 'poke'))
    // Let the notifier take its baseline, then write to someone else's bucket, then to alice's.
    await new Promise((r) => setTimeout(r, 100))
    await entry('user:bob')
    await new Promise((r) => setTimeout(r, 150))
    const own = await entry('user:alice')
    const events = await ready
    expect(events[0]?.event).toBe('ready')
    const pokes = events.filter((e) => e.event === 'poke')
    expect(pokes).toHaveLength(1)
    expect(JSON.parse(pokes[0]?.data ?? '{}')).toEqual({ seq: own })
  })

  it('global entries poke every client; the stream ends cleanly when the client goes away', async () => {
    const { clientId } = await app.registerClient('carol')
    const ac = new AbortController()
    const res = await app.handler(
      new Request(`http://t/sync/events?client_id=${clientId}`, {
        headers: { 'x-user-id': 'carol' },
        signal: ac.signal,
      }),
    )
    const got = readEvents(res, (e) => e.some((x) => x.event === 'poke'))
    await new Promise((r) => setTimeout(r, 100))
    await entry('global')
    expect((await got).some((e) => e.event === 'poke')).toBe(true)
    ac.abort()
  })

  it('a client whose checkpoint is behind the head gets one poke right after connecting', async () => {
    const { clientId } = await app.registerClient('erin')
    const seq = await entry('user:erin')
    const res = await app.handler(
      new Request(`http://t/sync/events?client_id=${clientId}&checkpoint=${seq - 1}`, {
        headers: { 'x-user-id': 'erin' },
      }),
    )
    const events = await readEvents(res, (e) => e.some((x) => x.event === 'poke'))
    expect(events.filter((e) => e.event === 'poke')).toHaveLength(1)
    // Caught up: no poke.
    const res2 = await app.handler(
      new Request(`http://t/sync/events?client_id=${clientId}&checkpoint=${seq + 1000}`, {
        headers: { 'x-user-id': 'erin' },
      }),
    )
    const quiet = await readEvents(res2, () => false, 300)
    expect(quiet.filter((e) => e.event === 'poke')).toHaveLength(0)
  })

  it('endLiveStreams() ends open streams (a graceful shutdown is not held open by them)', async () => {
    const { clientId } = await app.registerClient('frank')
    const res = await app.handler(
      new Request(`http://t/sync/events?client_id=${clientId}`, { headers: { 'x-user-id': 'frank' } }),
    )
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    await reader.read() // ready
    app.engine.endLiveStreams()
    const end = await Promise.race([reader.read(), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3000))])
    expect(end).toEqual({ done: true, value: undefined })
  })

  it('unregistered client → 404; missing client_id → 400; POST → 405; no identity → 401', async () => {
    const h = (path: string, init: RequestInit = {}) => app.handler(new Request(`http://t${path}`, init))
    expect((await h('/sync/events?client_id=nope', { headers: { 'x-user-id': 'dave' } })).status).toBe(404)
    expect((await h('/sync/events', { headers: { 'x-user-id': 'dave' } })).status).toBe(400)
    const post = await h('/sync/events?client_id=x', { method: 'POST', headers: { 'x-user-id': 'dave' } })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET')
    expect((await h('/sync/events?client_id=x')).status).toBe(401)
  })
})
