// 9. Compaction with a pinning client: healthy clients write and pull continuously while background compaction runs;
// one more client took a snapshot and from then on only sends empty pushes and re-registers (a client that never
// pulls, or a hostile one). Staleness must follow pull progress: that client is deactivated once the threshold
// passes, compaction deletes past its checkpoint, its next pull answers snapshot_required (and a snapshot brings it
// back), while the healthy clients are never forced to rebuild and lose nothing.
import { randomUUID } from 'node:crypto'
import { createDb } from '../lib/db.js'
import { call } from '../lib/http.js'
import { type InProcessStack, startInProcessStack } from '../lib/stack.js'
import { poll, sleep } from '../lib/util.js'

export interface PinningOptions {
  root: string
  healthyClients: number
  /** compaction.staleThresholdMs. */
  staleMs: number
  /** How long the workload runs (must exceed staleMs). */
  durationMs: number
  compactEveryMs: number
  log?: (line: string) => void
}

export interface PinningReport {
  written: number
  deleted: number
  changelogAtEnd: number
  compactionRuns: number
  /** safe seq of the first and last compaction run, and the pinning client's checkpoint. */
  safeSeq: { first: number; last: number; pinnedAt: number }
  /** From the pinning client's snapshot until compaction deactivated it. */
  deactivatedAfterMs: number | undefined
  pinningRequests: number
  violations: string[]
}

export async function runCompactionPinning(o: PinningOptions): Promise<PinningReport> {
  const log = o.log ?? (() => {})
  const violations: string[] = []
  const db = await createDb(o.root, 'rel_pin')
  let stack: InProcessStack | undefined
  try {
    stack = await startInProcessStack(db, { compaction: { staleThresholdMs: o.staleMs, batchSize: 500 } })
    const { engine, base } = stack
    const pair = { schema_version: 0, schema_hash: '' }
    const post = (user: string, route: string, body: object) =>
      call(base, 'POST', route, { user, body: { client_id: 'dev', ...pair, ...body } })

    const join = async (user: string) => {
      const r = await post(user, '/sync/register', {
        platform: 't',
        app_version: '1',
        schema_version: 0,
        schema_hash: '',
      })
      pair.schema_version = r.body.schema_version
      pair.schema_hash = r.body.schema_hash
      let cursor: unknown
      for (;;) {
        const s = await post(user, '/sync/snapshot', { cursor, limit: 1000 })
        if (s.status !== 200) throw new Error(`snapshot → ${s.status} ${s.text}`)
        if (!s.body.has_more) return s.body.checkpoint as number
        cursor = s.body.cursor
      }
    }

    // The pinning client joins first, at a low checkpoint (the seed rows captured), then never pulls again.
    await poll(async () => (await db.pool.query('SELECT 1 FROM sync_changelog LIMIT 1')).rowCount, 30_000, 'seed')
    const pinUser = randomUUID()
    const pinnedAt = await join(pinUser)
    const pinnedSince = Date.now()
    const healthy = Array.from({ length: o.healthyClients }, () => randomUUID())
    const checkpoints = new Map<string, number>()
    for (const u of healthy) checkpoints.set(u, await join(u))
    const acked = new Map<string, Set<string>>(healthy.map((u) => [u, new Set()]))
    const pulled = new Map<string, Set<string>>(healthy.map((u) => [u, new Set()]))
    let written = 0
    let stop = false

    const pullAll = async (u: string) => {
      for (;;) {
        const q = await post(u, '/sync/pull', { checkpoint: checkpoints.get(u), limit: 200 })
        if (q.status !== 200) return
        if (q.body.snapshot_required) {
          violations.push(`healthy client forced to snapshot (${q.body.snapshot_reason})`)
          return
        }
        for (const c of q.body.changes) pulled.get(u)?.add(c.id)
        checkpoints.set(u, q.body.checkpoint)
        if (!q.body.has_more) return
      }
    }
    const healthyLoops = healthy.map(async (u, i) => {
      for (let n = 0; !stop; n++) {
        const changes = Array.from({ length: 5 }, (_, k) => ({
          id: randomUUID(),
          table_name: 'orders',
          operation: 'create',
          data: { ship_address: `pin ${i}/${n}/${k}` },
        }))
        const p = await post(u, '/sync/push', { changes })
        for (const a of p.body?.accepted ?? []) {
          acked.get(u)?.add(a.id)
          written++
        }
        await pullAll(u)
        await sleep(30)
      }
    })
    let pinningRequests = 0
    const pinningLoop = (async () => {
      while (!stop) {
        // Everything a client can send without pulling: none of it is progress (Decision 36).
        const r = await post(pinUser, '/sync/push', { changes: [] })
        if (r.status !== 200) violations.push(`pinning client's empty push → ${r.status}`)
        await post(pinUser, '/sync/register', { platform: 't', app_version: '1' })
        pinningRequests += 2
        await sleep(100)
      }
    })()
    let compactionRuns = 0
    let deleted = 0
    const safe: number[] = []
    let deactivatedAfterMs: number | undefined
    const compactionLoop = (async () => {
      while (!stop) {
        const r = await engine.runCompaction()
        compactionRuns++
        deleted += r.deletedEntries
        safe.push(r.safeSeq)
        if (deactivatedAfterMs === undefined) {
          const s = await db.pool.query('SELECT is_active FROM sync_clients WHERE user_id = $1', [pinUser])
          if (s.rows[0]?.is_active === false) deactivatedAfterMs = Date.now() - pinnedSince
        }
        await sleep(o.compactEveryMs)
      }
    })()
    await sleep(o.durationMs)
    stop = true
    await Promise.all([...healthyLoops, pinningLoop, compactionLoop])
    log(`written ${written}, deleted ${deleted}, ${compactionRuns} compaction runs`)

    if (deactivatedAfterMs === undefined) violations.push('the client that only pushes was never deactivated')
    const lastSafe = safe[safe.length - 1] ?? 0
    if (lastSafe <= pinnedAt) violations.push(`compaction stayed pinned at seq ${lastSafe} (client at ${pinnedAt})`)
    if (deleted === 0) violations.push('compaction deleted nothing')
    // The pinned client learns it must rebuild, and a snapshot brings it back.
    const back = await post(pinUser, '/sync/pull', { checkpoint: pinnedAt })
    if (back.status !== 200 || back.body.snapshot_reason !== 'checkpoint_before_retention') {
      violations.push(`pinning client's pull → ${back.status} ${back.text.slice(0, 200)}, not snapshot_required`)
    }
    const again = await join(pinUser)
    const after = await post(pinUser, '/sync/pull', { checkpoint: again })
    if (after.status !== 200 || after.body.snapshot_required)
      violations.push('pinning client not served after a snapshot')
    // Nothing lost for the healthy clients: every acknowledged record reaches its owner.
    for (const u of healthy) {
      await poll(
        async () => {
          await pullAll(u)
          return [...(acked.get(u) ?? [])].every((id) => pulled.get(u)?.has(id))
        },
        30_000,
        'healthy client pulled every acknowledged record',
      ).catch(() => violations.push(`healthy client missing acknowledged records after compaction`))
    }
    const left = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM sync_changelog')
    return {
      written,
      deleted,
      changelogAtEnd: left.rows[0]?.n ?? 0,
      compactionRuns,
      safeSeq: { first: safe[0] ?? 0, last: lastSafe, pinnedAt },
      deactivatedAfterMs,
      pinningRequests,
      violations,
    }
  } finally {
    await stack?.stop()
    await db.drop()
  }
}
