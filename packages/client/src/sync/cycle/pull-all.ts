import type { PullResponse } from '@synchro/protocol'
import { InvalidResponseError } from '../../errors.js'
import { type DeferredCheckpoints, withDeferredCheckpoints } from '../../store/checkpoints.js'
import { getMeta, withSyncLock } from '../../store/database.js'
import { applyPullGroup, mergeBuckets, parseBuckets } from '../apply.js'
import { APPLY_GROUP_ROWS, type CycleContext, requireSchema, schemaPair } from './context.js'
import { snapshotRebuild } from './snapshot.js'

/**
 * Pull loop (§4.3 step 4). Consecutive pages are applied in one transaction per group of up to
 * APPLY_GROUP_ROWS rows (each page still applied in order, checkpoint stored with the group's last page): a
 * commit rewrites every B-tree page the group touched, so per-page commits dominate catch-up time. A catch-up of
 * several groups checkpoints the WAL once, at its end (DeferredCheckpoints).
 */
export async function pullAll(ctx: CycleContext): Promise<void> {
  await withDeferredCheckpoints(ctx.db, (checkpoints) => pullPages(ctx, checkpoints))
}

async function pullPages(ctx: CycleContext, checkpoints: DeferredCheckpoints): Promise<void> {
  const schema = requireSchema(ctx)
  let rows = 0
  let pages = 0
  const heardAtStart = ctx.position?.heard ?? 0
  let { checkpoint, known } = await ctx.db.run(async (ex) => ({
    checkpoint: Number((await getMeta(ex, 'checkpoint')) ?? '0') || 0,
    known: parseBuckets(await getMeta(ex, 'known_buckets')),
  }))
  let group: PullResponse[] = []
  let groupRows = 0
  const flush = async () => {
    if (group.length === 0) return
    const pagesToApply = group
    group = []
    groupRows = 0
    await ctx.db.transaction((tx) => withSyncLock(tx, () => applyPullGroup(tx, schema.tables, pagesToApply)), 'sync')
  }
  for (;;) {
    const res: PullResponse = await ctx.transport.pull({
      client_id: ctx.cfg.clientID,
      checkpoint,
      limit: ctx.cfg.pullPageSize,
      // Sent even when empty: the server then tells a new client its subscriptions (Decision 19).
      known_buckets: known,
      ...schemaPair(ctx),
    })
    if (res.snapshot_required) {
      await flush()
      ctx.position?.reset()
      const reason = res.snapshot_reason ?? 'initial_sync_required'
      await snapshotRebuild(ctx, reason !== 'initial_sync_required', reason)
      return
    }
    group.push(res)
    groupRows += res.changes.length + res.deletes.length
    rows += res.changes.length + res.deletes.length
    pages++
    known = mergeBuckets(known, res.bucket_updates) ?? known
    if (!res.has_more || groupRows >= APPLY_GROUP_ROWS) {
      if (res.has_more) await checkpoints.defer()
      await flush()
    }
    if (pages > 1 || res.has_more) {
      ctx.setStatus({ status: 'syncing', retryAt: null, progress: { phase: 'pull', rows, pages } })
    }
    if (!res.has_more) {
      ctx.position?.pulled(res.checkpoint, heardAtStart)
      return
    }
    if (res.checkpoint <= checkpoint) {
      await flush()
      throw new InvalidResponseError('pull has_more without checkpoint progress')
    }
    checkpoint = res.checkpoint
  }
}
