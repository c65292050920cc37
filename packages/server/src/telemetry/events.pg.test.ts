import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startWalConsumer } from '../wal/consumer.js'
import { OPERATOR_EVENTS } from './events.js'

/** A pino-shaped logger that keeps every line's fields and message. */
function memoryLogger() {
  const lines: { level: string; fields: Record<string, unknown>; msg?: string }[] = []
  const at = (level: string) => (fields: unknown, msg?: string) =>
    lines.push({ level, fields: fields as Record<string, unknown>, msg })
  const events = (name: string) => lines.filter((l) => l.fields.event === name)
  return { lines, events, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

describe('operator events (one log line each, stable fields)', () => {
  const log = memoryLogger()
  let app: TestApp
  beforeAll(async () => {
    app = await createTestApp({ engine: { logger: log, compaction: { batchSize: 2 } } })
  })
  afterAll(async () => {
    await app.close()
  })

  it('compaction: one synchro.compaction.progress per committed batch, then synchro.compaction.done', async () => {
    const user = randomUUID()
    const reg = await app.registerClient(user)
    const { rows } = await app.db.pool.query<{ seq: string }>(
      `INSERT INTO sync_changelog (bucket_id, table_name, record_id, operation)
       SELECT 'user:' || $1, 'orders', gen_random_uuid()::text, 1 FROM generate_series(1, 5) RETURNING seq::text`,
      [user],
    )
    const head = Math.max(...rows.map((r) => Number(r.seq)))
    // The only active client has pulled everything: all 5 entries may go, in batches of 2, 2 and 1.
    await app.db.pool.query(`UPDATE sync_clients SET last_pull_seq = $1, last_sync_at = now() WHERE client_id = $2`, [
      head,
      reg.clientId,
    ])
    await app.engine.runCompaction()
    expect(log.events(OPERATOR_EVENTS.compactionProgress).map((l) => l.fields)).toEqual([
      { event: 'synchro.compaction.progress', safeSeq: head, batch: 1, batchDeleted: 2, deletedEntries: 2 },
      { event: 'synchro.compaction.progress', safeSeq: head, batch: 2, batchDeleted: 2, deletedEntries: 4 },
      { event: 'synchro.compaction.progress', safeSeq: head, batch: 3, batchDeleted: 1, deletedEntries: 5 },
    ])
    const [done] = log.events(OPERATOR_EVENTS.compactionDone)
    expect(done?.fields).toEqual({
      event: 'synchro.compaction.done',
      deactivatedClients: 0,
      safeSeq: head,
      deletedEntries: 5,
      batches: 3,
      durationMs: expect.any(Number),
    })

    // That client, pulling from before the compacted boundary, must rebuild: synchro.client.rebuild.
    const pulled = await app.call('POST', '/sync/pull', {
      user,
      body: { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, checkpoint: 1 },
    })
    expect(pulled.body.snapshot_reason).toBe('checkpoint_before_retention')
    expect(log.events(OPERATOR_EVENTS.clientRebuild).map((l) => [l.level, l.fields])).toEqual([
      [
        'warn',
        {
          event: 'synchro.client.rebuild',
          userId: user,
          clientId: reg.clientId,
          checkpoint: 1,
          reason: 'checkpoint_before_retention',
        },
      ],
    ])
  })

  it('a new client’s first snapshot is not a rebuild', async () => {
    const user = randomUUID()
    const reg = await app.registerClient(user)
    const before = log.events(OPERATOR_EVENTS.clientRebuild).length
    const pulled = await app.call('POST', '/sync/pull', {
      user,
      body: { client_id: reg.clientId, schema_version: reg.version, schema_hash: reg.hash, checkpoint: 0 },
    })
    expect(pulled.body.snapshot_reason).toBe('initial_sync_required')
    expect(log.events(OPERATOR_EVENTS.clientRebuild)).toHaveLength(before)
  })

  it('capture: a batch whose changes committed longer ago than lagWarnMs logs synchro.capture.behind', async () => {
    const wal = memoryLogger()
    const options = { pool: app.db.pool, registry: app.engine.ctx.registry, replicationUrl: app.db.url }
    const slot = { ...options, slotName: app.db.name, logger: wal, lagWarnMs: 200 }
    // First run creates the slot; stopped, it lets changes wait in the WAL like a consumer that fell behind.
    const first = startWalConsumer(slot)
    await waitUntil(async () => first.status().running)
    await first.stop()
    await app.db.pool.query(`INSERT INTO orders (user_id) VALUES ($1)`, [randomUUID()])
    const committed = Date.now()
    await waitUntil(async () => Date.now() - committed > 400) // the change is now at least 400 ms old
    const second = startWalConsumer(slot)
    try {
      await waitUntil(async () => wal.events(OPERATOR_EVENTS.captureBehind).length > 0)
    } finally {
      await second.stop()
    }
    const [behind] = wal.events(OPERATOR_EVENTS.captureBehind)
    expect(behind?.level).toBe('warn')
    expect(behind?.fields).toEqual({
      event: 'synchro.capture.behind',
      lagMs: expect.any(Number),
      thresholdMs: 200,
      behindForMs: 0,
      lagBytes: expect.any(Number),
      lsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
    })
    expect(behind?.fields.lagMs as number).toBeGreaterThanOrEqual(400)
  })
})

async function waitUntil(ok: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 20))
  }
}
