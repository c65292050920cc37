// 4. Hostile input: generated malformed requests over a real socket against every route. Each must get a 4xx JSON
// error (or a 200 whose bad records are rejected one by one), never a 500 and never a dropped connection, and the
// database must be unchanged except for what the server legitimately accepted.
import { createHash, randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createEngine, createSyncHandler, headerAuth, Registry } from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import fc from 'fast-check'
import type pg from 'pg'
import { createDb } from '../lib/db.js'
import { call, callStream, NoAnswer } from '../lib/http.js'
import { deepRecords, nestedText } from './deep-json.js'
import { runJwtTricks } from './jwt-tricks.js'

export interface HostileOptions {
  root: string
  bodies: number
  seed: number
}

export interface HostileReport {
  seed: number
  requests: number
  statuses: Record<string, number>
  byRoute: Record<string, number>
  acceptedRecords: number
  /** Records of the deep-JSON creates answered (each beyond the limit must be rejected_terminal invalid_data). */
  deepRecords: number
  jwtTricks: number
  durationMs: number
  violations: string[]
}

const ROUTES = ['/sync/register', '/sync/pull', '/sync/push', '/sync/snapshot'] as const

const HOSTILE_NAMES = [
  'orders; DROP TABLE orders; --',
  '"orders"',
  'ORDERS',
  'public.orders',
  'pg_catalog.pg_authid',
  'sync_clients',
  'sync_changelog',
  "orders' OR '1'='1",
  'orders\u0000',
  'ördérs',
  '__proto__',
  'constructor',
  'x'.repeat(10_000),
  '',
  ' orders',
]
const HOSTILE_KEYS = [
  'user_id',
  'id',
  'updated_at',
  'deleted_at',
  '"; DROP TABLE orders; --',
  "ship_address\" = 'x' --",
  '__proto__',
  'constructor',
  'prototype',
  'total_cents)',
  'a\u0000b',
  'k'.repeat(5_000),
  '',
  'metadata',
  'status',
]

/** 3 000 random printable characters: too long for any identifier column, and no compression shrinks it. */
const incompressible: fc.Arbitrary<string> = fc
  .uint8Array({ minLength: 2_250, maxLength: 2_250 })
  .map((b) => Buffer.from(b).toString('base64'))

/** Nesting depths for `metadata` in otherwise valid creates (the limit is 64 for `data`, i.e. 63 here). */
const DEEP = [10, 62, 63, 64, 65, 300, 4_200, 6_000]

/** Values that are wrong in type, size or range for some field. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    -1,
    0,
    1.5,
    2 ** 53 + 2,
    -(2 ** 63),
    9.9e307,
    '9223372036854775808',
    'NaN',
    '',
    '\u0000',
    'a\u0000b',
    '\uD800',
    '2026-13-45T99:99:99Z',
    'yesterday',
    [],
    {},
    [1, 2],
    { nested: { deeper: [1, { x: null }] } },
    'x'.repeat(100_000),
  ),
  fc.string({ unit: 'binary', maxLength: 50 }),
  incompressible,
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map((b) => ({ __raw: b.toString() })),
  fc.jsonValue({ maxDepth: 4 }),
)

function pushRecordArb(validIds: string[]): fc.Arbitrary<Record<string, unknown>> {
  // Plausible creates with hostile values and keys: some are legitimately accepted (and excluded from the check).
  const plausible = fc.record({
    id: fc.uuid({ version: 4 }),
    table_name: fc.constantFrom('orders', 'categories'),
    operation: fc.constant('create'),
    data: fc.record(
      {
        ship_address: fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), hostileValue),
        total_cents: fc.oneof(fc.integer(), hostileValue),
        name: fc.string({ unit: 'grapheme', maxLength: 20 }),
        search_tags: fc.oneof(fc.array(fc.string()), hostileValue),
        [HOSTILE_KEYS[4]!]: hostileValue,
        user_id: fc.constantFrom(null, 'someone-else', '00000000-0000-4000-8000-0000000000aa'),
      },
      { requiredKeys: [] },
    ),
    client_updated_at: fc.constant(new Date().toISOString()),
  })
  // Valid creates whose jsonb column nests around and far beyond the limit ({"__deep":n} is expanded in toJson).
  const deep = fc.record({
    id: fc.uuid({ version: 4 }),
    table_name: fc.constant('orders'),
    operation: fc.constant('create'),
    data: fc.record({
      ship_address: fc.constant('deep'),
      metadata: fc.constantFrom(...DEEP).map((n) => ({ __deep: n })),
    }),
  })
  return fc.oneof(
    plausible,
    deep,
    fc.record(
      {
        id: fc.oneof(fc.uuid(), fc.constantFrom(...validIds), hostileValue),
        table_name: fc.oneof(
          fc.constantFrom('orders', 'order_details', 'products', 'categories', ...HOSTILE_NAMES),
          hostileValue,
        ),
        operation: fc.oneof(
          fc.constantFrom('create', 'update', 'delete', 'CREATE', 'insert', 'upsert', ''),
          hostileValue,
        ),
        data: fc.oneof(
          fc.dictionary(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string()), hostileValue, { maxKeys: 6 }),
          hostileValue,
        ),
        client_updated_at: fc.oneof(fc.constant(new Date().toISOString()), hostileValue),
        base_updated_at: hostileValue,
      },
      { requiredKeys: [] },
    ),
  )
}

/** JSON text with bigint placeholders turned into bare number literals beyond 2^53 and deep placeholders expanded. */
function toJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/\{"__raw":"(-?\d+)"\}/g, '$1')
    .replace(/\{"__deep":(\d+)\}/g, (_, n: string) => nestedText(Number(n)))
}

type Body = {
  route: string
  method: string
  body: string | Uint8Array
  user: string
  headers?: Record<string, string>
  /** Deep creates in the body: id → depth of `data`. */
  deep?: Map<string, number>
}

function bodyArb(ctx: {
  users: string[]
  clientIds: string[]
  pair: { schema_version: number; schema_hash: string }
  ids: string[]
}): fc.Arbitrary<Body> {
  const user = fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...ctx.users) },
    { weight: 1, arbitrary: fc.constantFrom("' OR 1=1 --", 'user:x,global', 'A'.repeat(2000), 'global', '%00', 'ü') },
    { weight: 1, arbitrary: incompressible },
  )
  const route = fc.constantFrom(...ROUTES)
  const schema = fc.oneof(
    { weight: 4, arbitrary: fc.constant(ctx.pair) },
    { weight: 1, arbitrary: fc.record({ schema_version: hostileValue, schema_hash: hostileValue }) },
  )
  const clientId = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...ctx.clientIds) },
    { weight: 1, arbitrary: hostileValue },
  )
  // Structured but wrong: valid skeletons with hostile fields.
  const structured = fc
    .tuple(
      route,
      user,
      schema,
      clientId,
      fc.array(pushRecordArb(ctx.ids), { maxLength: 6 }),
      fc.dictionary(
        fc.constantFrom(
          'checkpoint',
          'limit',
          'tables',
          'known_buckets',
          'cursor',
          'client_name',
          'platform',
          'app_version',
          'changes',
        ),
        hostileValue,
        { maxKeys: 3 },
      ),
    )
    .map(([r, u, s, cid, changes, extra]) => ({
      route: r,
      method: 'POST',
      user: u,
      body: toJson({ client_id: cid, checkpoint: 0, changes, ...s, ...extra }),
      deep: deepRecords(changes),
    }))
  const rawText = fc.oneof(
    fc.constantFrom(
      '',
      'null',
      '[]',
      '"x"',
      '{',
      '{"client_id":',
      'not json',
      `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
      `{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}`,
      '{"client_id":"a","client_id":{"x":1},"schema_version":1,"schema_version":"1","schema_hash":""}',
      '{"__proto__":{"polluted":true},"client_id":"x","schema_version":0,"schema_hash":""}',
      `{"changes":[${'{},'.repeat(1500)}{}],"schema_version":1,"schema_hash":"x"}`,
      '{"client_id":"\u0000","schema_version":1e400,"schema_hash":"\\ud800"}',
      `{"checkpoint":123456789012345678901234567890,"client_id":"x","schema_version":0,"schema_hash":""}`,
    ),
    fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)),
    fc.string({ unit: 'binary', maxLength: 300 }),
  )
  const raw = fc.tuple(route, user, rawText).map(([r, u, b]) => ({ route: r, method: 'POST', user: u, body: b }))
  // Bytes that are not UTF-8 at all.
  const bytes = fc.tuple(route, user, fc.uint8Array({ minLength: 1, maxLength: 200 })).map(([r, u, b]) => ({
    route: r,
    method: 'POST',
    user: u,
    body: new Uint8Array([0x7b, 0xff, 0xfe, ...b, 0xc0, 0x80, 0x7d]),
  }))
  // Wrong method / route / content type.
  const odd = fc
    .tuple(
      fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'POST'),
      fc.constantFrom(
        ...ROUTES,
        '/sync/tables',
        '/sync/schema',
        '/sync/../sync/push',
        '/sync/push/',
        '/sync/%00',
        '/sync/nope',
      ),
      user,
    )
    .map(([m, r, u]) => ({
      route: r,
      method: m,
      user: u,
      body: m === 'GET' ? '' : '{}',
      headers: { 'content-type': 'text/plain' },
    }))
  // /sync/events with hostile query parameters (client ids never registered: a real stream would never end).
  const eventsQuery = fc
    .tuple(
      user,
      fc.oneof(
        fc.constantFrom('dev-B%00', '%00', 'c-1%00', '', '%ZZ', 'a&client_id=c-1', '%F0%9F', 'x'.repeat(300)),
        incompressible.map(encodeURIComponent),
        fc.string({ unit: 'binary', maxLength: 40 }).map((x) => encodeURIComponent(`ev-${x}`)),
      ),
      fc.constantFrom('', '&checkpoint=-1', '&checkpoint=1e400', '&checkpoint=%00', '&checkpoint=99999999999999999999'),
    )
    .map(([u, cid, extra]) => ({ route: `/sync/events?client_id=${cid}${extra}`, method: 'GET', user: u, body: '' }))
  return fc.oneof(
    { weight: 1, arbitrary: eventsQuery },
    { weight: 6, arbitrary: structured },
    { weight: 2, arbitrary: raw },
    { weight: 1, arbitrary: bytes },
    { weight: 1, arbitrary: odd },
  )
}

/** Row digests of every app table and sync_clients (columns a request may legitimately change excluded). */
async function digest(pool: pg.Pool): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const t of ['orders', 'order_details', 'products', 'categories']) {
    const { rows } = await pool.query<{ id: string; d: string }>(
      `SELECT id::text, md5(to_jsonb(t)::text) AS d FROM ${t} t`,
    )
    for (const r of rows) out.set(`${t}|${r.id}`, r.d)
  }
  const { rows } = await pool.query<{ id: string; d: string }>(
    `SELECT id::text, md5(jsonb_build_array(user_id, client_id, bucket_subs, is_active)::text) AS d FROM sync_clients`,
  )
  for (const r of rows) out.set(`sync_clients|${r.id}`, r.d)
  const tables = await pool.query<{ n: string }>(
    `SELECT string_agg(tablename, ',' ORDER BY tablename) AS n FROM pg_tables WHERE schemaname = 'public'`,
  )
  out.set('catalog|tables', createHash('md5').update(tables.rows[0]!.n).digest('hex'))
  return out
}

export async function runHostile(o: HostileOptions): Promise<HostileReport> {
  const started = Date.now()
  const db = await createDb(o.root, 'rel_hostile')
  const violations: string[] = []
  const statuses: Record<string, number> = {}
  const byRoute: Record<string, number> = {}
  const quiet = { debug() {}, info() {}, warn() {}, error() {} }
  let server: http.Server | undefined
  let engine: Awaited<ReturnType<typeof createEngine>> | undefined
  try {
    await db.pool.query(NORTHWIND_SQL)
    await db.pool.query(NORTHWIND_SEED_SQL)
    const registry = new Registry()
    for (const t of NORTHWIND_TABLES) registry.register(t)
    engine = await createEngine({ pool: db.pool, registry, logger: quiet })
    const handler = createSyncHandler(engine, { authenticate: headerAuth(), logger: quiet })
    server = http.createServer(toNodeListener(handler))
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

    // Legitimate state: two users with registered clients, an order each, a snapshot done.
    const users = [randomUUID(), randomUUID()]
    const clientIds = ['c-1', 'c-2']
    let pair = { schema_version: 0, schema_hash: '' }
    const ids: string[] = []
    for (const u of users) {
      for (const cid of clientIds) {
        const r = await call(base, 'POST', '/sync/register', {
          user: u,
          body: { client_id: cid, platform: 't', app_version: '1.0.0', schema_version: 0, schema_hash: '' },
        })
        pair = { schema_version: r.body.schema_version, schema_hash: r.body.schema_hash }
      }
      const id = randomUUID()
      ids.push(id)
      await db.pool.query('INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, $3)', [id, u, 'legit'])
    }
    ids.push('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000101')
    const before = await digest(db.pool)
    const legit = new Set<string>()
    let requests = 0
    let accepted = 0
    let deepRecords = 0

    await fc.assert(
      fc.asyncProperty(bodyArb({ users, clientIds, pair, ids }), async (b) => {
        requests++
        let a: Awaited<ReturnType<typeof call>>
        try {
          const raw = b.method === 'GET' || b.method === 'HEAD' ? undefined : b.body
          a = b.route.startsWith('/sync/events?')
            ? await callStream(base, b.route, { user: b.user })
            : await call(base, b.method, b.route, { user: b.user, raw, headers: b.headers, timeoutMs: 30_000 })
        } catch (err) {
          const why = err instanceof NoAnswer ? err.message : String(err)
          violations.push(`${b.method} ${b.route}: no answer (${why}) for body ${String(b.body).slice(0, 200)}`)
          return
        }
        statuses[a.status] = (statuses[a.status] ?? 0) + 1
        const routeKey = b.route.split('?')[0] as string
        byRoute[routeKey] = (byRoute[routeKey] ?? 0) + 1
        const short = typeof b.body === 'string' ? b.body.slice(0, 300) : `<${b.body.length} bytes>`
        if (a.status >= 500)
          violations.push(`${b.method} ${b.route} → ${a.status} ${a.text.slice(0, 200)} for ${short}`)
        else if (a.status !== 200 && typeof a.body?.error !== 'string' && a.body?.code !== 'schema_mismatch')
          violations.push(`${b.method} ${b.route} → ${a.status} without a JSON error: ${a.text.slice(0, 100)}`)
        else if (a.status === 200) {
          const type = a.headers.get('content-type') ?? ''
          // A registered client id (hostile values do get registered) opens a real event stream.
          const stream = b.route.startsWith('/sync/events?') && type.includes('text/event-stream')
          if (!stream && !type.includes('application/json')) violations.push(`${b.route} 200 without JSON content type`)
          if (b.route === '/sync/register') legit.add(`sync_clients|${a.body.id}`)
          if (b.route === '/sync/push') {
            if (!Array.isArray(a.body.accepted) || !Array.isArray(a.body.rejected))
              violations.push(`push 200 without result arrays`)
            for (const r of a.body.accepted ?? []) {
              accepted++
              legit.add(`${r.table_name}|${r.id}`)
            }
            // Nesting beyond the limit: refused terminally, never applied and never "retry later".
            for (const r of [...(a.body.accepted ?? []), ...(a.body.rejected ?? [])]) {
              const depth = b.deep?.get(r.id)
              if (depth === undefined) continue
              deepRecords++
              if (depth > 64 && (r.status !== 'rejected_terminal' || r.reason_code !== 'invalid_data'))
                violations.push(`data ${depth} levels deep → ${r.status} ${r.reason_code}`)
            }
          }
        }
      }),
      { seed: o.seed, numRuns: o.bodies, endOnFailure: true },
    )

    const after = await digest(db.pool)
    for (const [k, d] of after) {
      if (legit.has(k)) continue
      if (!before.has(k)) violations.push(`row appeared without being accepted: ${k}`)
      else if (before.get(k) !== d) violations.push(`row changed without being accepted: ${k}`)
    }
    for (const k of before.keys()) if (!after.has(k)) violations.push(`row vanished: ${k}`)
    // After the digest: its controls register clients.
    const jwt = await runJwtTricks(engine)
    violations.push(...jwt.violations)
    return {
      seed: o.seed,
      requests,
      statuses,
      byRoute,
      acceptedRecords: accepted,
      deepRecords,
      jwtTricks: jwt.cases,
      durationMs: Date.now() - started,
      violations,
    }
  } finally {
    if (server) {
      server.closeAllConnections()
      await new Promise<void>((r) => server!.close(() => r()))
    }
    await engine?.close().catch(() => {})
    await db.drop()
  }
}
