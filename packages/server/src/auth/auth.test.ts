import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { identify } from '../http/identity.js'
import { AuthError, headerAuth, jwtAuth, KeySetUnavailableError } from './auth.js'

const req = (headers: Record<string, string>) => new Request('http://x/sync/pull', { headers })

async function failure(p: Promise<string> | string): Promise<string> {
  try {
    await p
  } catch (e) {
    if (e instanceof AuthError) return e.message
    throw e
  }
  return 'passed'
}

describe('JWKS mode (RS/ES only)', () => {
  let server: http.Server
  let url: string
  let rsa: CryptoKey
  let ec: CryptoKey
  let fetches = 0
  beforeAll(async () => {
    const r = await generateKeyPair('RS256')
    const e = await generateKeyPair('ES256')
    rsa = r.privateKey
    ec = e.privateKey
    const keys = [
      { ...(await exportJWK(r.publicKey)), kid: 'rsa1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(e.publicKey)), kid: 'ec1', alg: 'ES256', use: 'sig' },
    ]
    server = http.createServer((_q, s) => {
      fetches++
      s.setHeader('content-type', 'application/json')
      s.end(JSON.stringify({ keys }))
    })
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
  })
  afterAll(async () => {
    await new Promise((r) => server.close(r))
  })

  it('accepts RS256 and ES256 tokens signed by a published key, fetching the JWKS once', async () => {
    const auth = jwtAuth({ jwksUrl: url })
    const t1 = await new SignJWT({ sub: 'Alice' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa1' }).sign(rsa)
    const t2 = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'ES256', kid: 'ec1' }).sign(ec)
    expect(await auth(req({ authorization: `Bearer ${t1}` }))).toBe('Alice')
    expect(await auth(req({ authorization: `Bearer ${t2}` }))).toBe('bob')
    for (let i = 0; i < 20; i++) {
      const t = await new SignJWT({ sub: `u${i}` }).setProtectedHeader({ alg: 'RS256', kid: 'rsa1' }).sign(rsa)
      await auth(req({ authorization: `Bearer ${t}` }))
    }
    expect(fetches).toBe(1)
  })

  it('HS/RS confusion: an HS256 token signed with the public key material is rejected in JWKS mode', async () => {
    const auth = jwtAuth({ jwksUrl: url })
    const secretFromPublic = new TextEncoder().encode(JSON.stringify(await (await fetch(url)).json()))
    const t = await new SignJWT({ sub: 'mallory' })
      .setProtectedHeader({ alg: 'HS256', kid: 'rsa1' })
      .sign(secretFromPublic)
    expect(await failure(auth(req({ authorization: `Bearer ${t}` })))).toBe('invalid token')
  })

  it('a key that is not published (unknown kid / other key) → invalid token', async () => {
    const auth = jwtAuth({ jwksUrl: url })
    const other = await generateKeyPair('RS256')
    const t = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256', kid: 'nope' }).sign(other.privateKey)
    expect(await failure(auth(req({ authorization: `Bearer ${t}` })))).toBe('invalid token')
    const t2 = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'RS256', kid: 'rsa1' }).sign(other.privateKey)
    expect(await failure(auth(req({ authorization: `Bearer ${t2}` })))).toBe('invalid token')
  })
})

describe('JWKS mode: the endpoint failing', () => {
  let server: http.Server
  let url: string
  let rsa: CryptoKey
  /** What the endpoint answers: the key set, or a 500. */
  let up = true
  beforeAll(async () => {
    const r = await generateKeyPair('RS256')
    rsa = r.privateKey
    const keys = [{ ...(await exportJWK(r.publicKey)), kid: 'rsa1', alg: 'RS256', use: 'sig' }]
    server = http.createServer((_q, s) => {
      s.statusCode = up ? 200 : 500
      s.setHeader('content-type', 'application/json')
      s.end(up ? JSON.stringify({ keys }) : '{"error":"down"}')
    })
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
  })
  afterEach(() => {
    vi.useRealTimers()
    up = true
  })
  afterAll(async () => {
    await new Promise((r) => server.close(r))
  })
  const token = (sub: string, kid = 'rsa1') => new SignJWT({ sub }).setProtectedHeader({ alg: 'RS256', kid }).sign(rsa)
  const unavailable = () => new Response(null, { status: 503 })
  const logger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} } as never

  it('never read (endpoint down, or nothing listening): 503 for the handler, not 401', async () => {
    up = false
    const auth = jwtAuth({ jwksUrl: url })
    const request = req({ authorization: `Bearer ${await token('alice')}` })
    await expect(auth(request)).rejects.toBeInstanceOf(KeySetUnavailableError)
    expect(((await identify(request, auth, logger, unavailable)) as Response).status).toBe(503)
    const closed = jwtAuth({ jwksUrl: 'http://127.0.0.1:1/jwks.json' })
    expect(((await identify(request, closed, logger, unavailable)) as Response).status).toBe(503)
  })

  it('down after a successful read: the last key set still verifies; an unknown key is still 401', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const auth = jwtAuth({ jwksUrl: url })
    expect(await auth(req({ authorization: `Bearer ${await token('alice')}` }))).toBe('alice')
    up = false
    vi.setSystemTime(Date.now() + 60 * 60_000) // past jose's cache age and cooldown: the next token refetches
    expect(await auth(req({ authorization: `Bearer ${await token('bob')}` }))).toBe('bob')
    const other = await generateKeyPair('RS256')
    const forged = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'RS256', kid: 'nope' })
      .sign(other.privateKey)
    expect(await failure(auth(req({ authorization: `Bearer ${forged}` })))).toBe('invalid token')
  })
})

describe('secret mode', () => {
  const secret = new TextEncoder().encode('s3cret')
  it('custom user claim; missing claim → token missing user claim', async () => {
    const auth = jwtAuth({ secret: 's3cret', userClaim: 'uid' })
    const ok = await new SignJWT({ uid: 'U1', sub: 'ignored' }).setProtectedHeader({ alg: 'HS256' }).sign(secret)
    expect(await auth(req({ authorization: `Bearer ${ok}` }))).toBe('U1')
    const missing = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).sign(secret)
    expect(await failure(auth(req({ authorization: `Bearer ${missing}` })))).toBe('token missing user claim')
  })

  it('a cached token still expires: expired tokens are rejected even after a successful verify', async () => {
    const auth = jwtAuth({ secret: 's3cret' })
    const exp = Math.floor(Date.now() / 1000) + 1
    const t = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(secret)
    expect(await auth(req({ authorization: `Bearer ${t}` }))).toBe('x')
    await new Promise((r) => setTimeout(r, exp * 1000 - Date.now() + 50))
    expect(await failure(auth(req({ authorization: `Bearer ${t}` })))).toBe('invalid token')
  })

  it('configuration without secret or JWKS fails at construction', () => {
    expect(() => jwtAuth({})).toThrow(/secret or jwksUrl/)
  })
})

describe('header mode', () => {
  it('missing or empty X-User-ID → missing user identity', async () => {
    const auth = headerAuth()
    expect(await failure(auth(req({})))).toBe('missing user identity')
    expect(await failure(auth(req({ 'x-user-id': '' })))).toBe('missing user identity')
    expect(await auth(req({ 'x-user-id': 'U' }))).toBe('U')
  })
})
