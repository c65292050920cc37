import { randomUUID } from 'node:crypto'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import { SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ExampleConfig } from './synchro.js'

/** How the suite reaches an example: `path` starts at the mount prefix's `/sync/…`. */
export interface ExampleTarget {
  fetch(path: string, init?: RequestInit): Promise<Response>
  close(): Promise<void>
}

type SchemaPair = { schema_version: number; schema_hash: string }
type PulledRecord = { table_name: string; id: string; data: Record<string, unknown> }

const SECRET = 'examples-test-secret'

async function token(sub: string, secret = SECRET): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(secret))
}

/** Reads Server-Sent Events one at a time; fails loudly when none arrives (a framework that buffers the stream). */
class EventReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #decoder = new TextDecoder()
  #buffer = ''

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.getReader()
  }

  async next(expected: string, timeoutMs = 30_000): Promise<{ event: string; data: string }> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const end = this.#buffer.indexOf('\n\n')
      if (end >= 0) {
        const block = this.#buffer.slice(0, end)
        this.#buffer = this.#buffer.slice(end + 2)
        const event = /^event: (.*)$/m.exec(block)?.[1]
        if (event) return { event, data: /^data: (.*)$/m.exec(block)?.[1] ?? '' }
        continue // a comment (heartbeat) or a retry line
      }
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no ${expected} event within ${timeoutMs} ms while the stream was open (buffered?)`)),
          Math.max(0, deadline - Date.now()),
        )
      })
      const chunk = await Promise.race([this.#reader.read(), timeout]).finally(() => clearTimeout(timer))
      if (chunk.done) throw new Error('the event stream ended before the expected event')
      this.#buffer += this.#decoder.decode(chunk.value, { stream: true })
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel()
  }
}

/**
 * The WAL consumer starts in the background. A write is captured only once its slot has finished being created
 * (a new logical slot starts at a consistent point that waits for transactions in every database to end), so wait
 * until the consumer streams from it.
 */
async function captureStreaming(db: TestDatabase): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const { rowCount } = await db.pool.query(
      `SELECT 1 FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
        WHERE s.slot_name = $1 AND r.state = 'streaming'`,
      [db.name],
    )
    if (rowCount) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`the example's WAL consumer is not streaming from slot ${db.name}`)
}

/**
 * The test every example runs: a fresh database, the example started on it (JWT auth, WAL consumer, a random port),
 * then register → snapshot → live stream → push → poke → pull through the framework.
 */
export function exampleSuite(name: string, start: (config: ExampleConfig) => Promise<ExampleTarget>): void {
  describe(`example: ${name}`, () => {
    let db: TestDatabase
    let target: ExampleTarget
    beforeAll(async () => {
      db = await createTestDatabase('synchro_ex')
      target = await start({ databaseUrl: db.url, jwtSecret: SECRET, slotName: db.name, port: 0 })
      await captureStreaming(db)
    })
    afterAll(async () => {
      await target?.close()
      await db?.drop()
    })

    const post = async <T = Record<string, unknown>>(path: string, auth: string, body: unknown) => {
      const res = await target.fetch(path, {
        method: 'POST',
        headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      return { status: res.status, body: (await res.json()) as T }
    }

    it('requires a valid JWT (no token, a token signed with another secret → 401)', async () => {
      const none = await target.fetch('/sync/schema')
      expect(none.status).toBe(401)
      await none.text()
      const forged = await target.fetch('/sync/schema', {
        headers: { authorization: `Bearer ${await token(randomUUID(), 'another-secret')}` },
      })
      expect(forged.status).toBe(401)
      await forged.text()
    })

    it('register → snapshot → live stream → push → poke → pull', async () => {
      const jwt = await token(randomUUID())
      const register = async (clientId: string) => {
        const r = await post<SchemaPair>('/sync/register', jwt, {
          client_id: clientId,
          platform: 'example-test',
          app_version: '1.0.0',
          schema_version: 0,
          schema_hash: '',
        })
        expect(r.status).toBe(200)
        return { schema_version: r.body.schema_version, schema_hash: r.body.schema_hash }
      }
      const schema = await register('phone')
      await register('laptop')

      const snap = await post<{ checkpoint: number }>('/sync/snapshot', jwt, { client_id: 'laptop', ...schema })
      expect(snap.status).toBe(200)
      const checkpoint = snap.body.checkpoint

      const events = await target.fetch(`/sync/events?client_id=laptop&checkpoint=${checkpoint}`, {
        headers: { authorization: `Bearer ${jwt}`, accept: 'text/event-stream' },
      })
      expect(events.status).toBe(200)
      expect(events.headers.get('content-type')).toBe('text/event-stream')
      const live = new EventReader(events.body as ReadableStream<Uint8Array>)
      try {
        // The stream stays open: this event only arrives if the framework passes bytes through unbuffered.
        expect((await live.next('ready')).event).toBe('ready')

        const id = randomUUID()
        const pushed = await post<{ accepted: { id: string }[] }>('/sync/push', jwt, {
          client_id: 'phone',
          ...schema,
          changes: [
            {
              id,
              table_name: 'todos',
              operation: 'create',
              data: { title: 'buy milk' },
              client_updated_at: new Date().toISOString(),
            },
          ],
        })
        expect(pushed.status).toBe(200)
        expect(pushed.body.accepted.map((r) => r.id)).toEqual([id])

        // The WAL consumer captures the insert into the changelog; the laptop's open stream is poked.
        const poke = await live.next('poke')
        expect(poke.event).toBe('poke')
        expect(JSON.parse(poke.data).seq).toBeGreaterThan(checkpoint)

        const pulled = await post<{ changes: PulledRecord[] }>('/sync/pull', jwt, {
          client_id: 'laptop',
          checkpoint,
          ...schema,
        })
        expect(pulled.status).toBe(200)
        const todo = pulled.body.changes.find((c) => c.id === id)
        expect(todo?.table_name).toBe('todos')
        expect(todo?.data.title).toBe('buy milk')
      } finally {
        await live.cancel()
      }
    })
  })
}

/** A target for an example that listens on a port: requests go over a real socket to `url`. */
export function overHttp(running: { url: string; close(): Promise<void> }): ExampleTarget {
  return { fetch: (path, init) => fetch(running.url + path, init), close: () => running.close() }
}
