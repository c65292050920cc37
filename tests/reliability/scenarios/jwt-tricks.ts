// JWT header tricks for the hostile-input scenario: `kid` path traversal and injection, `jku` pointing at an
// attacker's key set, an embedded `jwk` (RSA and symmetric), and an unknown critical header (`crit`), in shared-secret
// and JWKS mode. Every trick must be refused with 401 and a JSON error; correctly signed controls are served.
import { createHmac, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createSyncHandler, type Engine, jwtAuth } from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { exportJWK } from 'jose'
import { call } from '../lib/http.js'

const b64 = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString('base64url')

/** A compact JWS built by hand: libraries refuse to *sign* some of these headers (unknown `crit`). */
function jws(header: object, payload: object, key: KeyObject | string): string {
  const input = `${b64(header)}.${b64(payload)}`
  const sig =
    typeof key === 'string' ? createHmac('sha256', key).update(input).digest() : sign('sha256', Buffer.from(input), key)
  return `${input}.${b64(sig)}`
}

async function serve(handler: (r: Request) => Promise<Response>): Promise<{ base: string; close(): Promise<void> }> {
  const server = http.createServer(toNodeListener(handler))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    },
  }
}

export async function runJwtTricks(engine: Engine): Promise<{ cases: number; violations: string[] }> {
  const violations: string[] = []
  const quiet = { debug() {}, info() {}, warn() {}, error() {} }
  const secret = 'hostile-jwt-secret-0123456789abcdefghijkl'
  const server = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const serverJwk = { ...(await exportJWK(server.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
  const attackerJwk = { ...(await exportJWK(attacker.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
  const keySets = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: [req.url === '/attacker.json' ? attackerJwk : serverJwk] }))
  })
  await new Promise<void>((r) => keySets.listen(0, '127.0.0.1', () => r()))
  const jwksBase = `http://127.0.0.1:${(keySets.address() as AddressInfo).port}`
  const hs = await serve(createSyncHandler(engine, { authenticate: jwtAuth({ secret }), logger: quiet }))
  const rs = await serve(
    createSyncHandler(engine, { authenticate: jwtAuth({ jwksUrl: `${jwksBase}/jwks.json` }), logger: quiet }),
  )
  try {
    const sub = randomUUID()
    const claims = { sub, exp: Math.floor(Date.now() / 1000) + 600 }
    const jku = `${jwksBase}/attacker.json`
    const symmetricJwk = { kty: 'oct', k: Buffer.from('attacker').toString('base64url') }
    const cases: [string, string, string, number][] = [
      ['HS256 with a kid (control)', hs.base, jws({ alg: 'HS256', kid: 'k1' }, claims, secret), 200],
      [
        'kid path traversal, signed with an empty file',
        hs.base,
        jws({ alg: 'HS256', kid: '../../../../dev/null' }, claims, ''),
        401,
      ],
      [
        'kid SQL injection',
        hs.base,
        jws({ alg: 'HS256', kid: "x' UNION SELECT 'attacker' --" }, claims, 'attacker'),
        401,
      ],
      [
        'jku to the attacker’s keys (secret mode)',
        hs.base,
        jws({ alg: 'RS256', kid: 'k1', jku }, claims, attacker.privateKey),
        401,
      ],
      [
        'embedded RSA jwk (secret mode)',
        hs.base,
        jws({ alg: 'RS256', jwk: attackerJwk }, claims, attacker.privateKey),
        401,
      ],
      ['embedded symmetric jwk', hs.base, jws({ alg: 'HS256', jwk: symmetricJwk }, claims, 'attacker'), 401],
      [
        'unknown crit header, valid signature',
        hs.base,
        jws({ alg: 'HS256', crit: ['x-bypass'], 'x-bypass': true }, claims, secret),
        401,
      ],
      ['crit naming a registered header', hs.base, jws({ alg: 'HS256', crit: ['exp'] }, claims, secret), 401],
      ['RS256 kid k1 (control)', rs.base, jws({ alg: 'RS256', kid: 'k1' }, claims, server.privateKey), 200],
      ['unknown kid, attacker key', rs.base, jws({ alg: 'RS256', kid: 'k2' }, claims, attacker.privateKey), 401],
      ['kid k1, attacker key', rs.base, jws({ alg: 'RS256', kid: 'k1' }, claims, attacker.privateKey), 401],
      ['jku to the attacker’s keys', rs.base, jws({ alg: 'RS256', kid: 'k1', jku }, claims, attacker.privateKey), 401],
      ['embedded RSA jwk', rs.base, jws({ alg: 'RS256', jwk: attackerJwk }, claims, attacker.privateKey), 401],
      [
        'unknown crit header, valid RS256 signature',
        rs.base,
        jws({ alg: 'RS256', kid: 'k1', crit: ['x-bypass'], 'x-bypass': 1 }, claims, server.privateKey),
        401,
      ],
    ]
    for (const [label, base, token, want] of cases) {
      const a = await call(base, 'POST', '/sync/register', {
        headers: { authorization: `Bearer ${token}` },
        body: { client_id: `jwt-${randomUUID()}`, platform: 't', app_version: '1', schema_version: 0, schema_hash: '' },
      })
      if (a.status !== want) violations.push(`JWT ${label}: ${a.status} ${a.text.slice(0, 100)} (want ${want})`)
      else if (want === 401 && typeof a.body?.error !== 'string')
        violations.push(`JWT ${label}: 401 without JSON error`)
    }
    return { cases: cases.length, violations }
  } finally {
    await hs.close()
    await rs.close()
    await new Promise<void>((r) => keySets.close(() => r()))
  }
}
