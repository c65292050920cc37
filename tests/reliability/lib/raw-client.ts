// A protocol-level client over raw HTTP: register → snapshot → pull/push, keeping an in-memory replica of the rows
// it may read, so it can be compared with the server's tables at the end.
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { type Answer, call, type Json, NoAnswer } from './http.js'

export interface PushChange {
  id: string
  table_name: string
  operation: 'create' | 'update' | 'delete'
  data?: Record<string, unknown>
  client_updated_at?: string
  base_updated_at?: string | null
}

/** JSON with object keys sorted (row renderings from different queries compare equal). */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`
  }
  return JSON.stringify(v)
}

export class RawClient {
  pair = { schema_version: 0, schema_hash: '' }
  checkpoint = 0
  snapshotDone = false
  /** Live rows: `table|id` → data. */
  readonly rows = new Map<string, Json>()
  readonly statuses = new Map<number, number>()
  /** Requests that got no HTTP answer, by kind (timeout / network). */
  readonly noAnswer = { timeout: 0, network: 0, refused: 0 }
  readonly latencies: number[] = []

  constructor(
    readonly base: () => string,
    readonly user: string,
    readonly clientId = `raw-${randomUUID()}`,
    readonly timeoutMs = 30_000,
  ) {}

  private async post(route: string, body: unknown): Promise<Answer> {
    let a: Answer
    try {
      a = await call(this.base(), 'POST', route, { user: this.user, body, timeoutMs: this.timeoutMs })
    } catch (err) {
      if (err instanceof NoAnswer) {
        if (err.code === 'ECONNREFUSED') this.noAnswer.refused++
        else this.noAnswer[err.kind]++
      }
      throw err
    }
    this.latencies.push(a.ms)
    this.statuses.set(a.status, (this.statuses.get(a.status) ?? 0) + 1)
    return a
  }

  async register(): Promise<Answer> {
    const a = await this.post('/sync/register', {
      client_id: this.clientId,
      platform: 'reliability',
      app_version: '1.0.0',
      schema_version: 0,
      schema_hash: '',
    })
    if (a.status === 200) this.pair = { schema_version: a.body.schema_version, schema_hash: a.body.schema_hash }
    return a
  }

  /** A complete snapshot (restarted from scratch if a page fails). Returns false when a page failed. */
  async snapshot(limit = 1000): Promise<boolean> {
    const rows = new Map<string, Json>()
    let cursor: Json = null
    let checkpoint = 0
    for (;;) {
      const a = await this.post('/sync/snapshot', { client_id: this.clientId, cursor, limit, ...this.pair })
      if (a.status !== 200) return false
      for (const r of a.body.records) rows.set(`${r.table_name}|${r.id}`, r.data)
      checkpoint = a.body.checkpoint
      if (!a.body.has_more) break
      cursor = a.body.cursor
    }
    this.rows.clear()
    for (const [k, v] of rows) this.rows.set(k, v)
    this.checkpoint = checkpoint
    this.snapshotDone = true
    return true
  }

  /** register + snapshot. */
  async bootstrap(): Promise<boolean> {
    if ((await this.register()).status !== 200) return false
    return this.snapshot()
  }

  /** One pull page applied to the replica; returns the answer (has_more in body). */
  async pullOnce(limit = 1000): Promise<Answer> {
    const a = await this.post('/sync/pull', {
      client_id: this.clientId,
      checkpoint: this.checkpoint,
      limit,
      ...this.pair,
    })
    if (a.status !== 200) return a
    if (a.body.snapshot_required) {
      await this.snapshot()
      return a
    }
    for (const c of a.body.changes) {
      const k = `${c.table_name}|${c.id}`
      if (c.deleted_at) this.rows.delete(k)
      else this.rows.set(k, c.data)
    }
    for (const d of a.body.deletes) this.rows.delete(`${d.table_name}|${d.id}`)
    if (a.body.checkpoint > this.checkpoint) this.checkpoint = a.body.checkpoint
    return a
  }

  /** Pulls until has_more is false; false when a page failed. */
  async pullAll(limit = 1000): Promise<boolean> {
    for (let i = 0; i < 100_000; i++) {
      const a = await this.pullOnce(limit)
      if (a.status !== 200) return false
      if (!a.body.has_more && !a.body.snapshot_required) return true
    }
    return false
  }

  push(changes: PushChange[]): Promise<Answer> {
    return this.post('/sync/push', { client_id: this.clientId, changes, ...this.pair })
  }
}

/** Rows `user` may read (Decision 5), live only, as `table|id` → to_jsonb(row). */
export async function visibleRows(pool: pg.Pool, user: string): Promise<Map<string, Json>> {
  const { rows } = await pool.query<{ k: string; data: Json }>(
    `SELECT 'orders|' || id AS k, to_jsonb(o) AS data FROM orders o WHERE user_id::text = $1 AND deleted_at IS NULL
     UNION ALL
     SELECT 'order_details|' || d.id, to_jsonb(d) FROM order_details d JOIN orders o ON o.id = d.order_id
       WHERE o.user_id::text = $1 AND d.deleted_at IS NULL
     UNION ALL
     SELECT 'products|' || id, to_jsonb(p) FROM products p WHERE deleted_at IS NULL
     UNION ALL
     SELECT 'categories|' || id, to_jsonb(c) FROM categories c WHERE (user_id IS NULL OR user_id::text = $1) AND deleted_at IS NULL`,
    [user],
  )
  return new Map(rows.map((r) => [r.k, r.data]))
}

/** Differences between a replica and the server's visible rows (empty = equal). */
export function diffRows(label: string, replica: Map<string, Json>, server: Map<string, Json>, max = 5): string[] {
  const out: string[] = []
  for (const [k, v] of server) {
    const mine = replica.get(k)
    if (mine === undefined) out.push(`${label}: missing ${k}`)
    else if (canonical(mine) !== canonical(v))
      out.push(`${label}: differs ${k}: ${canonical(mine)} vs server ${canonical(v)}`)
  }
  for (const k of replica.keys()) if (!server.has(k)) out.push(`${label}: extra ${k} (not live/visible on the server)`)
  return out.length > max ? [...out.slice(0, max), `${label}: … ${out.length - max} more differences`] : out
}
