import { createTestApp, type TestApp } from '@synchro/test-harness'
import { generateKeyPair, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jwtAuth } from '../auth/auth.js'

const SECRET = 'test-secret-please-change'
const key = new TextEncoder().encode(SECRET)
const hs = (claims: Record<string, unknown>, alg = 'HS256', k: Uint8Array = key) =>
  new SignJWT(claims).setProtectedHeader({ alg }).sign(k)

let app: TestApp
beforeAll(async () => {
  app = await createTestApp({
    authenticate: jwtAuth({ secret: SECRET }),
    engine: { minClientVersion: '1.0.0' },
  })
})
afterAll(async () => {
  await app.close()
})

const bearer = (t: string) => ({ authorization: `Bearer ${t}` })
const reg = { client_id: 'c1', platform: 'test', app_version: '1.0.0', schema_version: 0, schema_hash: '' }

describe('§3 A auth and HTTP plumbing', () => {
  it('1 GET /healthz without auth → 200 {"status":"ok"}', async () => {
    const r = await app.call('GET', '/healthz')
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ status: 'ok' })
    expect(r.headers.get('content-type')).toBe('application/json')
  })

  it('2 register without Authorization → 401 missing or malformed authorization header', async () => {
    const r = await app.call('POST', '/sync/register', { body: reg })
    expect(r.status).toBe(401)
    expect(r.body).toEqual({ error: 'missing or malformed authorization header' })
    const lower = await app.call('POST', '/sync/register', { body: reg, headers: { authorization: 'bearer x' } })
    expect(lower.body).toEqual({ error: 'missing or malformed authorization header' })
  })

  it('3 invalid, expired, wrong-secret, RS256 and alg=none tokens → 401 invalid token', async () => {
    const { privateKey } = await generateKeyPair('RS256')
    const tokens = [
      'invalid-token',
      await new SignJWT({ sub: 'u' })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime(Math.floor(Date.now() / 1000) - 10)
        .sign(key),
      await hs({ sub: 'u' }, 'HS256', new TextEncoder().encode('wrong-secret')),
      await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey),
      `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"u"}').toString('base64url')}.`,
      await new SignJWT({ sub: 'u' })
        .setProtectedHeader({ alg: 'HS256' })
        .setNotBefore(Math.floor(Date.now() / 1000) + 3600)
        .sign(key),
    ]
    for (const t of tokens) {
      const r = await app.call('POST', '/sync/register', { body: reg, headers: bearer(t) })
      expect(r.status, t).toBe(401)
      expect(r.body).toEqual({ error: 'invalid token' })
    }
  })

  it('HS384/HS512 are accepted in secret mode; a token without exp is accepted', async () => {
    for (const alg of ['HS384', 'HS512']) {
      const r = await app.call('GET', '/sync/tables', { headers: bearer(await hs({ sub: 'u' }, alg)) })
      expect(r.status).toBe(200)
    }
  })

  it('4 valid signature without sub, or numeric/empty sub → 401 token missing user claim', async () => {
    for (const claims of [{}, { sub: 42 }, { sub: '' }]) {
      const r = await app.call('POST', '/sync/register', { body: reg, headers: bearer(await hs(claims)) })
      expect(r.status).toBe(401)
      expect(r.body).toEqual({ error: 'token missing user claim' })
    }
  })

  it('5 upper-case sub is lower-cased: the client row and bucket subscriptions use the lower-case id', async () => {
    const r = await app.call('POST', '/sync/register', {
      body: { ...reg, client_id: 'upper' },
      headers: bearer(await hs({ sub: 'ABCDEF-UPPER' })),
    })
    expect(r.status).toBe(200)
    const { rows } = await app.db.pool.query(`SELECT user_id, bucket_subs FROM sync_clients WHERE client_id = 'upper'`)
    expect(rows).toEqual([{ user_id: 'abcdef-upper', bucket_subs: ['user:abcdef-upper', 'global'] }])
  })

  it('7 version gate: old or unparseable X-App-Version → 426; absent, pre-release, v-prefixed, build → pass', async () => {
    const t = await hs({ sub: 'u7' })
    for (const v of ['0.1.0', '1.0', 'garbage', '1.2.3.4', '0.9.9']) {
      const r = await app.call('GET', '/sync/tables', { headers: { ...bearer(t), 'x-app-version': v } })
      expect(r.status, v).toBe(426)
      expect(r.body).toEqual({ error: 'client upgrade required' })
    }
    for (const v of ['1.0.0-beta', 'v1.0.0', '1.0.0+build', '2.0.0', '1.0.0']) {
      const r = await app.call('GET', '/sync/tables', { headers: { ...bearer(t), 'x-app-version': v } })
      expect(r.status, v).toBe(200)
    }
    expect((await app.call('GET', '/sync/tables', { headers: bearer(t) })).status).toBe(200)
  })

  it('8 no token and an old version → 401 (auth first)', async () => {
    const r = await app.call('POST', '/sync/register', { body: reg, headers: { 'x-app-version': '0.1.0' } })
    expect(r.status).toBe(401)
  })

  it('9 wrong method → 405 with Allow', async () => {
    const t = await hs({ sub: 'u9' })
    const a = await app.call('GET', '/sync/pull', { headers: bearer(t) })
    expect(a.status).toBe(405)
    expect(a.headers.get('allow')).toBe('POST')
    expect(a.body).toEqual({ error: 'method not allowed' })
    const b = await app.call('POST', '/sync/tables', { headers: bearer(t) })
    expect(b.status).toBe(405)
    expect(b.headers.get('allow')).toBe('GET')
  })

  it('426 beats 405 and 404', async () => {
    const headers = { ...bearer(await hs({ sub: 'u' })), 'x-app-version': '0.0.1' }
    expect((await app.call('GET', '/sync/pull', { headers })).status).toBe(426)
    expect((await app.call('POST', '/sync/nonexistent', { headers })).status).toBe(426)
  })

  it('10 unknown /sync path → 404; a trailing slash is not a route', async () => {
    const t = await hs({ sub: 'u10' })
    expect((await app.call('POST', '/sync/nonexistent', { headers: bearer(t) })).status).toBe(404)
    expect((await app.call('POST', '/sync/pull/', { headers: bearer(t) })).status).toBe(404)
  })

  it('11 body not JSON, empty, null, array, string → 400 invalid request body', async () => {
    const t = await hs({ sub: 'u11' })
    for (const path of ['/sync/register', '/sync/pull', '/sync/push', '/sync/snapshot']) {
      for (const raw of ['not json', '', 'null', '[]', '"x"', '42']) {
        const r = await app.call('POST', path, { raw, headers: bearer(t) })
        expect(r.status, `${path} ${raw}`).toBe(400)
        expect(r.body).toEqual({ error: 'invalid request body' })
      }
    }
  })

  it('body with invalid UTF-8 → 400, never 500', async () => {
    const t = await hs({ sub: 'u' })
    const bytes = new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])
    const res = await app.handler(
      new Request('http://test/sync/pull', { method: 'POST', headers: bearer(t), body: bytes }),
    )
    expect(res.status).toBe(400)
  })

  it('18 body over the limit → 413 (declared or streamed)', async () => {
    const small = await createTestApp({ handler: { bodyLimit: 1024 } })
    try {
      const big = JSON.stringify({ ...reg, client_name: 'x'.repeat(5000) })
      const r = await small.call('POST', '/sync/register', { user: 'u', raw: big })
      expect(r.status).toBe(413)
      // A streamed body without Content-Length is cut off while reading.
      const stream = new ReadableStream({
        start(c) {
          for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode('x'.repeat(500)))
          c.close()
        },
      })
      const res = await small.handler(
        new Request('http://test/sync/push', {
          method: 'POST',
          headers: { 'x-user-id': 'u' },
          body: stream,
          // @ts-expect-error Node's fetch needs duplex for streamed bodies
          duplex: 'half',
        }),
      )
      expect(res.status).toBe(413)
    } finally {
      await small.close()
    }
  })
})

describe('header (dev) mode', () => {
  it('6 no X-User-ID → 401 missing user identity; with header → accepted', async () => {
    const dev = await createTestApp()
    try {
      const r = await dev.call('POST', '/sync/register', { body: reg })
      expect(r.status).toBe(401)
      expect(r.body).toEqual({ error: 'missing user identity' })
      const e = await dev.call('POST', '/sync/register', { body: reg, user: '' })
      expect(e.status).toBe(401)
      const ok = await dev.call('POST', '/sync/register', { body: reg, user: 'U1' })
      expect(ok.status).toBe(200)
    } finally {
      await dev.close()
    }
  })

  it('rate-limit hook → 429 + Retry-After and the reason-phrase body', async () => {
    const limited = await createTestApp({ handler: { rateLimit: () => ({ retryAfterSeconds: 7 }) } })
    try {
      const r = await limited.call('POST', '/sync/register', { body: reg, user: 'u' })
      expect(r.status).toBe(429)
      expect(r.headers.get('retry-after')).toBe('7')
      expect(r.body).toEqual({ error: 'Too Many Requests', retry_after: 7 })
    } finally {
      await limited.close()
    }
  })
})

describe('§3 L transient failures', () => {
  it('142 database unreachable → 503 with Retry-After on every endpoint (Decision 11: GETs too)', async () => {
    const broken = await createTestApp({ handler: { retryAfterSeconds: 10 } })
    await broken.db.pool.end()
    try {
      for (const [method, path] of [
        ['POST', '/sync/register'],
        ['POST', '/sync/pull'],
        ['POST', '/sync/push'],
        ['POST', '/sync/snapshot'],
        ['GET', '/sync/tables'],
        ['GET', '/sync/schema'],
      ] as const) {
        const body =
          method === 'POST'
            ? { client_id: 'c', schema_version: 1, schema_hash: 'h', platform: '', app_version: '' }
            : undefined
        const r = await broken.call(method, path, { user: 'u', body })
        expect(r.status, path).toBe(503)
        expect(r.headers.get('retry-after')).toBe('10')
        expect(r.body).toEqual({ error: 'service temporarily unavailable', retry_after: 10 })
      }
    } finally {
      await broken.close()
    }
  })
})
