import type { PushResponse } from '@synchro/protocol'
import { InvalidResponseError } from '../../errors.js'
import { withSyncLock } from '../../store/database.js'
import { applyPushResults, markAttempted, queueKey, readPushBatch } from '../push.js'
import { type CycleContext, requireSchema, schemaPair } from './context.js'

/**
 * Pushes the whole queue in batches (§4.3 step 3). Changes the server answered `rejected_retryable` stay queued
 * with a retry time (not retried within this call, so they cannot hold back the rest of the queue).
 */
export async function pushAll(ctx: CycleContext): Promise<void> {
  const schema = requireSchema(ctx)
  const skip = new Set<string>()
  const apply = async (batch: Awaited<ReturnType<typeof readPushBatch>>, res: PushResponse) => {
    const opts = { now: ctx.cfg.timers.now(), maxAttempts: ctx.cfg.maxPushAttempts }
    const outcome = await ctx.db.transaction(
      (tx) => withSyncLock(tx, () => applyPushResults(tx, schema.tables, batch, res, opts)),
      'sync',
    )
    for (const c of outcome.conflicts) ctx.emitConflict(c)
    for (const l of [...ctx.pushObservers]) l(outcome)
    return outcome
  }
  for (;;) {
    // Read and mark as attempted in one transaction, before sending: a request whose answer is lost may still
    // have been applied, and the queue merge rules and the push results handling must know it.
    const batch = await ctx.db.transaction(async (tx) => {
      const b = await readPushBatch(tx, schema.tables, ctx.cfg.pushBatchSize, skip, ctx.cfg.timers.now())
      await markAttempted(tx, b.sent)
      return b
    }, 'sync')
    if (batch.changes.length === 0) {
      if (batch.dropped.length === 0) return
      await apply(batch, emptyPush())
      continue
    }
    const res = await ctx.transport.push({ client_id: ctx.cfg.clientID, changes: batch.changes, ...schemaPair(ctx) })
    const outcome = await apply(batch, res)
    for (const r of outcome.retryable) skip.add(queueKey(r.table, r.recordID))
    // Re-queued creates (record_exists after a lost answer) are pushed again as updates by the next iteration.
    const settled = outcome.applied + outcome.requeued + outcome.rejections.length
    // A server that answers without results for our changes would otherwise make us loop forever.
    if (settled + outcome.retryable.length === 0) {
      throw new InvalidResponseError('push response has no result for the pushed changes')
    }
  }
}

function emptyPush(): PushResponse {
  return { accepted: [], rejected: [], checkpoint: 0, server_time: '', schema_version: 0, schema_hash: '' }
}
