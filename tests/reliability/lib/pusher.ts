// A raw-HTTP pusher: owns one user's orders and keeps, per row, every attempt and how it ended, so "every
// acknowledged push is present" can be checked exactly even when answers are lost.
import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { NoAnswer } from './http.js'
import { type PushChange, RawClient } from './raw-client.js'
import { pick, sleep } from './util.js'

export type Status = 'acked' | 'ambiguous' | 'rejected'
export interface Attempt {
  op: 'create' | 'update' | 'delete'
  value: number
  status: Status
}

/** A raw-HTTP pusher: owns its user's orders and keeps, per row, every attempt and how it ended. */
export class Pusher {
  readonly client: RawClient
  readonly attempts = new Map<string, Attempt[]>()
  readonly live: string[] = []
  readonly stamps = new Map<string, string>()
  requests = 0
  noAnswer = 0
  private n = 0

  constructor(
    base: () => string,
    readonly user: string,
    readonly r: () => number,
    readonly tag: string,
  ) {
    this.client = new RawClient(base, user, `pusher-${tag}`, 15_000)
  }

  async step(): Promise<void> {
    if (!this.client.snapshotDone) {
      await this.client.bootstrap()
      return
    }
    const changes: PushChange[] = []
    const planned: { id: string; a: Attempt }[] = []
    const k = 1 + Math.floor(this.r() * 3)
    const touched = new Set<string>()
    for (let i = 0; i < k; i++) {
      const value = ++this.n * 1000 + Number(this.tag.replace(/\D/g, '') || 0)
      const x = this.r()
      if (this.live.length < 3 || x < 0.4) {
        const id = randomUUID()
        changes.push({
          id,
          table_name: 'orders',
          operation: 'create',
          data: { ship_address: `${this.tag}-${value}`, total_cents: value },
          client_updated_at: new Date().toISOString(),
        })
        planned.push({ id, a: { op: 'create', value, status: 'ambiguous' } })
        touched.add(id)
      } else {
        const id = pick(this.r, this.live)
        if (touched.has(id)) continue
        touched.add(id)
        const del = x > 0.85
        changes.push({
          id,
          table_name: 'orders',
          operation: del ? 'delete' : 'update',
          ...(del ? {} : { data: { ship_address: `${this.tag}-${value}`, total_cents: value } }),
          client_updated_at: new Date().toISOString(),
          base_updated_at: this.stamps.get(id) ?? null,
        })
        planned.push({ id, a: { op: del ? 'delete' : 'update', value, status: 'ambiguous' } })
      }
    }
    for (const p of planned) {
      const list = this.attempts.get(p.id)
      if (list) list.push(p.a)
      else this.attempts.set(p.id, [p.a])
    }
    this.requests++
    let answer: Awaited<ReturnType<RawClient['push']>> | undefined
    let refused = false
    try {
      answer = await this.client.push(changes)
    } catch (err) {
      if (!(err instanceof NoAnswer)) throw err
      // Connection refused: the request never reached a server, so it certainly was not applied.
      refused = err.code === 'ECONNREFUSED'
      this.noAnswer++
    }
    const results = new Map<string, { status: string; server_updated_at?: string }>()
    if (answer?.status === 200) {
      for (const r of [...answer.body.accepted, ...answer.body.rejected]) results.set(r.id, r)
    }
    for (const p of planned) {
      const r = results.get(p.id)
      if (refused) p.a.status = 'rejected'
      else if (answer?.status !== 200) p.a.status = answer && answer.status < 500 ? 'rejected' : 'ambiguous'
      else
        p.a.status = r?.status === 'applied' ? 'acked' : r?.status === 'rejected_retryable' ? 'ambiguous' : 'rejected'
      if (p.a.status === 'acked' && r?.server_updated_at) this.stamps.set(p.id, r.server_updated_at)
      // Rows whose fate is unknown are left alone; a create that was answered lives on, a delete ends the row.
      if (p.a.op === 'create' && p.a.status === 'acked') this.live.push(p.id)
      if ((p.a.op === 'delete' && !refused) || (p.a.op === 'update' && p.a.status === 'rejected' && !refused)) {
        const i = this.live.indexOf(p.id)
        if (i >= 0) this.live.splice(i, 1)
      }
    }
    if (refused) await sleep(50)
    else if (this.r() < 0.3) await this.client.pullOnce().catch(() => undefined)
  }

  /** Every acknowledged write present; nothing present that was never attempted. */
  async verify(pool: pg.Pool): Promise<string[]> {
    const v: string[] = []
    const { rows } = await pool.query<{ id: string; total_cents: string; deleted: boolean; user_id: string }>(
      'SELECT id::text, total_cents::text, deleted_at IS NOT NULL AS deleted, user_id::text FROM orders WHERE id = ANY($1::uuid[])',
      [[...this.attempts.keys()]],
    )
    const byId = new Map(rows.map((r) => [r.id, r]))
    for (const [id, list] of this.attempts) {
      const row = byId.get(id)
      const lastAcked = list.map((a) => a.status).lastIndexOf('acked')
      const create = list[0]
      if (!row) {
        if (create?.status === 'acked') v.push(`${this.tag}: acknowledged create of ${id} missing`)
        continue
      }
      if (row.user_id !== this.user) v.push(`${this.tag}: ${id} owned by ${row.user_id}`)
      if (row.deleted) {
        if (!list.some((a) => a.op === 'delete' && a.status !== 'rejected'))
          v.push(`${this.tag}: ${id} deleted without a delete`)
        continue
      }
      if (list.some((a) => a.op === 'delete' && a.status === 'acked')) {
        v.push(`${this.tag}: acknowledged delete of ${id} not applied`)
        continue
      }
      const allowed = new Set<number>()
      const from = Math.max(lastAcked, 0)
      if (lastAcked >= 0) allowed.add(list[lastAcked]!.value)
      for (let i = from; i < list.length; i++) if (list[i]!.status === 'ambiguous') allowed.add(list[i]!.value)
      if (lastAcked < 0 && create) allowed.add(create.value)
      if (!allowed.has(Number(row.total_cents)))
        v.push(`${this.tag}: ${id} total_cents ${row.total_cents}, expected one of ${[...allowed].join(',')}`)
    }
    return v
  }

  counts() {
    const c = { acked: 0, ambiguous: 0, rejected: 0 }
    for (const list of this.attempts.values()) for (const a of list) c[a.status]++
    return c
  }
}
