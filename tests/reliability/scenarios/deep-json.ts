// 8. Deeply nested JSON: pushes nest `data` around the limit and far beyond it (thousands of levels, which PostgreSQL
// accepts but the server could not serialise back); rows nested that deep are also written straight into PostgreSQL.
// Pushes beyond the limit must be refused terminally (never retried forever), and a stored row that cannot be rendered
// must never fail a pull or snapshot page: it is left out with a rule-failure record, the page and its checkpoint go on.
import { randomUUID } from 'node:crypto'
import { createDb } from '../lib/db.js'
import { call } from '../lib/http.js'
import { type InProcessStack, startInProcessStack } from '../lib/stack.js'
import { poll } from '../lib/util.js'

export interface DeepJsonOptions {
  root: string
  /** Extra nesting depths to push beyond the fixed set. */
  depths?: number[]
  /** Rows written by SQL with data too deep to render. */
  storedRows: number
}

export interface DeepJsonReport {
  maxJsonDepth: number
  pushed: { depth: number; status: string; reason?: string }[]
  pullPages: number
  snapshotRecords: number
  ruleFailures: number
  violations: string[]
}

/** `{"a":{"a":…1…}}` nested `depth` levels, as text (JSON.stringify would recurse as deep). */
export function nestedText(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`
}

/** Ids of the deep creates in a body and the depth of their `data` ({"metadata": nested n} is n + 1 deep). */
export function deepRecords(changes: readonly Record<string, unknown>[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const c of changes) {
    const m = (c.data as { metadata?: { __deep?: number } } | undefined)?.metadata
    if (typeof c.id === 'string' && typeof m?.__deep === 'number') out.set(c.id, m.__deep + 1)
  }
  return out
}

export async function runDeepJson(o: DeepJsonOptions): Promise<DeepJsonReport> {
  const violations: string[] = []
  const maxJsonDepth = 64
  const db = await createDb(o.root, 'rel_deep')
  let stack: InProcessStack | undefined
  try {
    stack = await startInProcessStack(db, { maxJsonDepth })
    const { base } = stack
    const user = randomUUID()
    const reg = await call(base, 'POST', '/sync/register', {
      user,
      body: { client_id: 'dev', platform: 't', app_version: '1', schema_version: 0, schema_hash: '' },
    })
    const pair = `"schema_version":${reg.body.schema_version},"schema_hash":${JSON.stringify(reg.body.schema_hash)}`
    const snap0 = await call(base, 'POST', '/sync/snapshot', { user, raw: `{"client_id":"dev",${pair}}` })
    let checkpoint: number = snap0.body.checkpoint

    // Pushes: `data` = {"metadata": <nested d>} is d + 1 levels deep; at most maxJsonDepth is accepted.
    const pushed: DeepJsonReport['pushed'] = []
    const okIds: string[] = []
    for (const d of [maxJsonDepth - 2, maxJsonDepth - 1, maxJsonDepth, 200, 4_110, 5_000, ...(o.depths ?? [])]) {
      const id = randomUUID()
      const change = `{"id":"${id}","table_name":"orders","operation":"create","data":{"metadata":${nestedText(d)}}}`
      const a = await call(base, 'POST', '/sync/push', {
        user,
        raw: `{"client_id":"dev",${pair},"changes":[${change}]}`,
      })
      const r = a.body?.accepted?.[0] ?? a.body?.rejected?.[0]
      pushed.push({ depth: d + 1, status: a.status === 200 ? r?.status : String(a.status), reason: r?.reason_code })
      const want = d + 1 <= maxJsonDepth ? 'applied' : 'rejected_terminal'
      if (a.status !== 200 || r?.status !== want || (want !== 'applied' && r?.reason_code !== 'invalid_data')) {
        violations.push(`push of data ${d + 1} levels deep → ${a.status} ${r?.status} ${r?.reason_code} (want ${want})`)
      }
      if (want === 'applied') okIds.push(id)
    }

    // Rows too deep to render, written by SQL (the app, a migration), each followed by a normal row.
    const deepIds: string[] = []
    for (let i = 0; i < o.storedRows; i++) {
      const deep = randomUUID()
      const normal = randomUUID()
      deepIds.push(deep)
      okIds.push(normal)
      await db.pool.query(`INSERT INTO orders (id, user_id, metadata) VALUES ($1, $2, $3::jsonb)`, [
        deep,
        user,
        nestedText(4_110 + i),
      ])
      await db.pool.query(`INSERT INTO orders (id, user_id, ship_address) VALUES ($1, $2, 'normal')`, [normal, user])
    }
    await poll(
      async () =>
        (
          await db.pool.query(
            'SELECT count(DISTINCT record_id)::int AS n FROM sync_changelog WHERE record_id = ANY($1)',
            [okIds],
          )
        ).rows[0]?.n === okIds.length,
      30_000,
      'changes captured',
    )

    // Pull everything: every page 200, the deep rows left out, the others delivered, the checkpoint moving on.
    const seen = new Set<string>()
    let pullPages = 0
    for (;;) {
      const q = await call(base, 'POST', '/sync/pull', {
        user,
        raw: `{"client_id":"dev","checkpoint":${checkpoint},${pair},"limit":3}`,
      })
      pullPages++
      if (q.status !== 200) {
        violations.push(`pull → ${q.status} ${q.text.slice(0, 200)}`)
        break
      }
      for (const c of q.body.changes) seen.add(c.id)
      checkpoint = q.body.checkpoint
      if (!q.body.has_more) break
    }
    for (const id of okIds) if (!seen.has(id)) violations.push(`pull never delivered renderable row ${id}`)
    for (const id of deepIds) if (seen.has(id)) violations.push(`pull delivered the unrenderable row ${id}`)
    const stored = await db.pool.query<{ s: string }>(
      `SELECT last_pull_seq::text AS s FROM sync_clients WHERE user_id = $1`,
      [user],
    )
    if (Number(stored.rows[0]?.s) !== checkpoint)
      violations.push(`stored checkpoint ${stored.rows[0]?.s} ≠ answered ${checkpoint}`)

    // Snapshot from scratch: every page 200, the same rows.
    let snapshotRecords = 0
    let cursor = 'null'
    for (;;) {
      const s = await call(base, 'POST', '/sync/snapshot', {
        user,
        raw: `{"client_id":"dev",${pair},"limit":3,"cursor":${cursor}}`,
      })
      if (s.status !== 200) {
        violations.push(`snapshot → ${s.status} ${s.text.slice(0, 200)}`)
        break
      }
      for (const r of s.body.records) if (deepIds.includes(r.id)) violations.push(`snapshot delivered ${r.id}`)
      snapshotRecords += s.body.records.length
      if (!s.body.has_more) break
      cursor = JSON.stringify(s.body.cursor)
    }
    const failures = await db.pool.query<{ n: number }>(
      `SELECT count(DISTINCT record_id)::int AS n FROM sync_rule_failures WHERE record_id = ANY($1)`,
      [deepIds],
    )
    const ruleFailures = failures.rows[0]?.n ?? 0
    if (ruleFailures !== deepIds.length) violations.push(`${ruleFailures} rule failures for ${deepIds.length} rows`)
    return { maxJsonDepth, pushed, pullPages, snapshotRecords, ruleFailures, violations }
  } finally {
    await stack?.stop()
    await db.drop()
  }
}
