// 5. Access: user B tries to read and write user A's data through every endpoint, with the superuser pool (no RLS,
// ownership enforced by our SQL) and with a non-superuser pool under the generated RLS policies; JWT attacks; the
// rate-limit hook. Returns a list of violations (empty = nobody got in).
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createEngine,
  createSyncHandler,
  ensurePublication,
  ensureSlot,
  headerAuth,
  jwtAuth,
  Registry,
  startWalConsumer,
} from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { createAppRolePool } from '@synchro/test-harness/roles'
import { exportJWK, SignJWT } from 'jose'
import type pg from 'pg'
import { createDb } from '../lib/db.js'
import { type Answer, call } from '../lib/http.js'

export interface AccessReport {
  checks: number
  jwtCases: number
  rateLimited: number
  durationMs: number
  violations: string[]
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} }

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

export async function runAccess(o: { root: string }): Promise<AccessReport> {
  const started = Date.now()
  const violations: string[] = []
  let checks = 0
  const db = await createDb(o.root, 'rel_access')
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  const closers: (() => Promise<void>)[] = []
  try {
    await db.pool.query(NORTHWIND_SQL)
    const superEngine = await createEngine({ pool: db.pool, registry, logger: quiet })
    closers.push(() => superEngine.close())
    const slot = `rel_acc_${db.name}`.slice(0, 63)
    await ensurePublication(db.pool, registry, 'synchro_pub')
    await ensureSlot(db.pool, slot)
    const consumer = startWalConsumer({
      pool: db.pool,
      registry,
      replicationUrl: db.url,
      slotName: slot,
      logger: quiet,
    })
    closers.push(() => consumer.stop())
    await db.pool.query(NORTHWIND_SEED_SQL)

    // A's secrets: an order, its detail, a private category. The marker must never reach B.
    const A = randomUUID()
    const SECRET = `SECRET-${randomUUID()}`
    const order = randomUUID()
    const detail = randomUUID()
    const category = randomUUID()
    await db.pool.query(
      `INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, $3);
       INSERT INTO order_details (id, order_id, product_name) VALUES ($4, $1, $3);
       INSERT INTO categories (id, user_id, name) VALUES ($5, $2, $3);`.replaceAll(
        /\$(\d)/g,
        (_, n) => `'${[order, A, SECRET, detail, category][Number(n) - 1]}'`,
      ),
    )
    const globalCat = '00000000-0000-4000-8000-000000000101'
    const { rows } = await db.pool.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')
    await consumer.waitForLsn(rows[0]!.l, 30_000)
    const digestA = async () =>
      (
        await db.pool.query<{ d: string }>(
          `SELECT md5(string_agg(to_jsonb(t)::text, '' ORDER BY t::text)) AS d FROM (
             SELECT to_jsonb(o) AS t FROM orders o WHERE id = $1 UNION ALL SELECT to_jsonb(d) FROM order_details d WHERE id = $2
             UNION ALL SELECT to_jsonb(c) FROM categories c WHERE id = ANY($3::uuid[])) x(t)`,
          [order, detail, [category, globalCat]],
        )
      ).rows[0]!.d

    for (const mode of ['superuser (no RLS)', 'app role + RLS'] as const) {
      let engine = superEngine
      if (mode === 'app role + RLS') {
        await superEngine.applyRls()
        const appPool: pg.Pool = await createAppRolePool(db)
        closers.push(() => appPool.end())
        engine = await createEngine({ pool: appPool, registry, logger: quiet, migrate: false })
        closers.push(() => engine.close())
      }
      const srv = await serve(createSyncHandler(engine, { authenticate: headerAuth(), logger: quiet }))
      closers.push(srv.close)
      const before = await digestA()
      const B = randomUUID()
      const v = (what: string) => violations.push(`[${mode}] ${what}`)
      const post = (route: string, body: unknown, user = B) => call(srv.base, 'POST', route, { user, body })
      /** `echo`: push results echo the ids B sent, so only A's values count as a leak there. */
      const leak = (label: string, a: Answer, echo = false) => {
        checks++
        const ids = echo ? [] : [order, detail, category]
        if (a.text.includes(SECRET) || ids.some((id) => a.text.includes(id)))
          v(`${label} leaks A's data: ${a.text.slice(0, 300)}`)
        if (a.status >= 500) v(`${label} → ${a.status}`)
      }
      // B registers with the very client id A uses: a separate client row, not A's.
      const regA = await post(
        '/sync/register',
        { client_id: 'phone', platform: 't', app_version: '1', schema_version: 0, schema_hash: '' },
        A,
      )
      const regB = await post('/sync/register', {
        client_id: 'phone',
        platform: 't',
        app_version: '1',
        schema_version: 0,
        schema_hash: '',
      })
      checks++
      if (regA.body.id === regB.body.id) v("B registered as A's client row")
      const pair = { schema_version: regB.body.schema_version, schema_hash: regB.body.schema_hash }
      // Snapshot: everything B may read, nothing of A's.
      let cursor = null
      const seen = new Set<string>()
      for (;;) {
        const s: Answer = await post('/sync/snapshot', { client_id: 'phone', cursor, limit: 2, ...pair })
        leak('snapshot', s)
        if (s.status !== 200) {
          v(`snapshot → ${s.status}`)
          break
        }
        for (const r of s.body.records) seen.add(r.id)
        if (!s.body.has_more) break
        cursor = s.body.cursor
      }
      checks++
      if (!seen.has(globalCat) || !seen.has('00000000-0000-4000-8000-000000000001'))
        v('snapshot misses rows B may read (global category / products)')
      // Pull from 0 with every trick: A's bucket in known_buckets, table filters, huge limits.
      for (const extra of [
        {},
        { known_buckets: [`user:${A}`, 'global'] },
        { tables: ['orders', 'order_details', 'categories'] },
        { limit: 1000 },
      ]) {
        leak(
          `pull ${JSON.stringify(extra)}`,
          await post('/sync/pull', { client_id: 'phone', checkpoint: 0, ...pair, ...extra }),
        )
      }
      // Pull as A's client id (same id, other user): still B's view.
      leak('pull with A-client id', await post('/sync/pull', { client_id: 'phone', checkpoint: 0, ...pair }))
      // Writes against A's rows.
      const now = new Date(Date.now() + 60_000).toISOString()
      const attacks = [
        {
          id: order,
          table_name: 'orders',
          operation: 'update',
          data: { ship_address: 'pwned' },
          client_updated_at: now,
        },
        { id: order, table_name: 'orders', operation: 'delete', client_updated_at: now },
        {
          id: order,
          table_name: 'orders',
          operation: 'create',
          data: { ship_address: 'pwned' },
          client_updated_at: now,
        },
        {
          id: detail,
          table_name: 'order_details',
          operation: 'update',
          data: { quantity: 99 },
          client_updated_at: now,
        },
        { id: detail, table_name: 'order_details', operation: 'delete', client_updated_at: now },
        {
          id: randomUUID(),
          table_name: 'order_details',
          operation: 'create',
          data: { order_id: order, product_name: 'x' },
          client_updated_at: now,
        },
        {
          id: category,
          table_name: 'categories',
          operation: 'update',
          data: { name: 'pwned' },
          client_updated_at: now,
        },
        {
          id: globalCat,
          table_name: 'categories',
          operation: 'update',
          data: { name: 'pwned' },
          client_updated_at: now,
        },
        { id: globalCat, table_name: 'categories', operation: 'delete', client_updated_at: now },
        {
          id: '00000000-0000-4000-8000-000000000001',
          table_name: 'products',
          operation: 'update',
          data: { name: 'pwned' },
          client_updated_at: now,
        },
      ]
      for (const change of attacks) {
        const p = await post('/sync/push', { client_id: 'phone', changes: [change], ...pair })
        leak(`push ${change.operation} ${change.table_name}`, p, true)
        checks++
        if (p.status === 200 && p.body.accepted.length > 0)
          v(`push ${change.operation} ${change.table_name} of A's row accepted`)
        const r = p.body?.rejected?.[0]
        if (r && r.status !== 'rejected_terminal' && r.status !== 'conflict')
          v(`push ${change.operation} ${change.table_name}: ${r.status} (retryable forever)`)
        if (r?.server_version) v(`push ${change.operation} ${change.table_name} returned a server_version`)
        // Decision 6: an update/delete of a row that exists but is not B's is `forbidden` (the superuser pool sees
        // it exists; under RLS the role cannot see other users' rows, so such an id reads as missing).
        const existsForB =
          change.table_name !== 'products' && (mode === 'superuser (no RLS)' || change.id === globalCat)
        if (r && change.operation !== 'create' && existsForB && r.reason_code !== 'forbidden') {
          v(`push ${change.operation} ${change.table_name} of a foreign row: ${r.reason_code}, not forbidden`)
        }
      }
      // Creates B may do must be stored as B's, even when they name A (or nobody) as owner.
      const mine = randomUUID()
      const cat = randomUUID()
      const ok = await post('/sync/push', {
        client_id: 'phone',
        changes: [
          { id: mine, table_name: 'orders', operation: 'create', data: { user_id: A }, client_updated_at: now },
          {
            id: cat,
            table_name: 'categories',
            operation: 'create',
            data: { user_id: null, name: 'mine' },
            client_updated_at: now,
          },
        ],
        ...pair,
      })
      leak('own creates', ok, true)
      const owners = await db.pool.query<{ id: string; u: string | null }>(
        'SELECT id::text, user_id::text AS u FROM orders WHERE id = $1 UNION ALL SELECT id::text, user_id::text FROM categories WHERE id = $2',
        [mine, cat],
      )
      for (const r of owners.rows) {
        checks++
        if (r.u !== B) v(`B's create ${r.id} stored with owner ${r.u}`)
      }
      checks++
      if ((await digestA()) !== before) v("A's rows changed")
      if (mode === 'superuser (no RLS)') {
        // fresh digest after the RLS switch is applied in the next round
      }
    }

    // JWT attacks (secret mode and JWKS mode).
    const secret = 'reliability-secret-0123456789abcdef'
    const key = new TextEncoder().encode(secret)
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
    const jwks = http.createServer((_, res) => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ keys: [jwk] }))
    })
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()))
    closers.push(() => new Promise<void>((r) => jwks.close(() => r())))
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`
    const hs = createSyncHandler(superEngine, { authenticate: jwtAuth({ secret }), logger: quiet })
    const rs = createSyncHandler(superEngine, { authenticate: jwtAuth({ jwksUrl }), logger: quiet })
    const hsSrv = await serve(hs)
    const rsSrv = await serve(rs)
    closers.push(hsSrv.close, rsSrv.close)
    const now = Math.floor(Date.now() / 1000)
    const sign = (claims: Record<string, unknown>, k: Uint8Array = key, alg = 'HS256') =>
      new SignJWT(claims).setProtectedHeader({ alg }).sign(k)
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const pubPem = publicKey.export({ type: 'spki', format: 'pem' }) as string
    const rsToken = await new SignJWT({ sub: A }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(privateKey)
    const cases: [string, string, string | undefined, number][] = [
      ['valid HS256 (control)', hsSrv.base, `Bearer ${await sign({ sub: A, exp: now + 60 })}`, 200],
      ['valid RS256 via JWKS (control)', rsSrv.base, `Bearer ${rsToken}`, 200],
      ['alg none', hsSrv.base, `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: A })}.`, 401],
      ['alg none (JWKS)', rsSrv.base, `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: A })}.`, 401],
      [
        'wrong key',
        hsSrv.base,
        `Bearer ${await sign({ sub: A }, new TextEncoder().encode('wrong-secret-0123456789abcdef'))}`,
        401,
      ],
      ['RS256 token in secret mode', hsSrv.base, `Bearer ${rsToken}`, 401],
      [
        'HS256 signed with the RSA public key (confusion) in JWKS mode',
        rsSrv.base,
        `Bearer ${await sign({ sub: A }, new TextEncoder().encode(pubPem))}`,
        401,
      ],
      ['HS256 token in JWKS mode', rsSrv.base, `Bearer ${await sign({ sub: A })}`, 401],
      ['expired', hsSrv.base, `Bearer ${await sign({ sub: A, exp: now - 5 })}`, 401],
      ['nbf in the future', hsSrv.base, `Bearer ${await sign({ sub: A, nbf: now + 3600 })}`, 401],
      ['missing sub', hsSrv.base, `Bearer ${await sign({ name: 'x' })}`, 401],
      ['numeric sub', hsSrv.base, `Bearer ${await sign({ sub: 42 })}`, 401],
      ['object sub', hsSrv.base, `Bearer ${await sign({ sub: { id: A } })}`, 401],
      ['empty sub', hsSrv.base, `Bearer ${await sign({ sub: '' })}`, 401],
      [
        'tampered payload',
        hsSrv.base,
        `Bearer ${(await sign({ sub: A })).replace(/\.[^.]+\./, `.${b64({ sub: randomUUID() })}.`)}`,
        401,
      ],
      ['lower-case bearer', hsSrv.base, `bearer ${await sign({ sub: A })}`, 401],
      ['no header', hsSrv.base, undefined, 401],
      ['garbage', hsSrv.base, 'Bearer not.a.jwt', 401],
      ['X-User-ID header in JWT mode', hsSrv.base, undefined, 401],
    ]
    for (const [label, base, auth, want] of cases) {
      const headers: Record<string, string> = {}
      if (auth) headers.authorization = auth
      if (label.startsWith('X-User-ID')) headers['x-user-id'] = A
      const a = await call(base, 'POST', '/sync/register', {
        headers,
        body: { client_id: `jwt-${label}`, platform: 't', app_version: '1', schema_version: 0, schema_hash: '' },
      })
      checks++
      if (a.status !== want) v2(`JWT ${label}: ${a.status} ${a.text.slice(0, 100)} (want ${want})`)
      if (want === 401 && typeof a.body?.error !== 'string') v2(`JWT ${label}: 401 without JSON error`)
    }
    function v2(s: string) {
      violations.push(s)
    }

    // Rate limit / backpressure hook: 429 + Retry-After past the budget; 503 variant for maintenance.
    let budget = 5
    const limited = createSyncHandler(superEngine, {
      authenticate: headerAuth(),
      logger: quiet,
      rateLimit: ({ route }) =>
        route === '/sync/schema'
          ? { status: 503, retryAfterSeconds: 30 }
          : budget-- > 0
            ? undefined
            : { retryAfterSeconds: 2.2 },
    })
    const lim = await serve(limited)
    closers.push(lim.close)
    let rateLimited = 0
    for (let i = 0; i < 10; i++) {
      const a = await call(lim.base, 'GET', '/sync/tables', { user: B() })
      if (i < 5 && a.status !== 200) violations.push(`rate limit: request ${i} within budget → ${a.status}`)
      if (i >= 5) {
        checks++
        if (
          a.status !== 429 ||
          a.headers.get('retry-after') !== '3' ||
          a.body?.retry_after !== 3 ||
          a.body?.error !== 'Too Many Requests'
        )
          violations.push(`rate limit: over budget → ${a.status} retry-after=${a.headers.get('retry-after')} ${a.text}`)
        else rateLimited++
      }
    }
    const m = await call(lim.base, 'GET', '/sync/schema', { user: B() })
    checks++
    if (m.status !== 503 || m.headers.get('retry-after') !== '30' || m.body?.error !== 'Service Unavailable')
      violations.push(`maintenance hook: ${m.status} ${m.headers.get('retry-after')} ${m.text}`)
    const noAuth = await call(lim.base, 'GET', '/sync/tables', {})
    checks++
    if (noAuth.status !== 401) violations.push(`rate limit runs before auth: ${noAuth.status}`)
    return { checks, jwtCases: cases.length, rateLimited, durationMs: Date.now() - started, violations }
  } finally {
    for (const c of closers.reverse()) await c().catch(() => {})
    await db.drop()
  }
}

function B(): string {
  return 'rate-limited-user'
}
