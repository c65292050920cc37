import type { SnapshotCursor, SnapshotResponse } from '@synchro/protocol'
import { InvalidResponseError, SnapshotRequiredError } from '../../errors.js'
import { beginRebuild, finishRebuild, unmarkStale } from '../../schema/migrate.js'
import { type DeferredCheckpoints, withDeferredCheckpoints } from '../../store/checkpoints.js'
import { setMeta, withSyncLock } from '../../store/database.js'
import { applySnapshotGroup } from '../apply.js'
import type { SyncProgress } from '../status.js'
import { clearUnreceived } from '../unreceived.js'
import { APPLY_GROUP_ROWS, type CycleContext, requireSchema, schemaPair } from './context.js'
import { pushAll } from './push-all.js'

/**
 * Snapshot rebuild (§4.3 step 5 + Decision 21): push the queue first, ask for approval when required, then page
 * /sync/snapshot over the local rows; with the final page, the rows it did not bring are deleted, except those with
 * queued changes (migrate.ts, `beginRebuild`). The checkpoint and snapshot_complete are stored with the final page
 * only, so an interrupted rebuild starts over.
 */
export async function snapshotRebuild(ctx: CycleContext, approval: boolean, reason: string): Promise<void> {
  const schema = requireSchema(ctx)
  // The live stream's position is unknown from here until the next pull; reset again at the end, because a stream
  // that reopens meanwhile stands at the stored checkpoint of the data being replaced (LivePosition.opened).
  ctx.position?.reset()
  try {
    // What could not be pushed stays queued, and its rows survive the rebuild.
    await pushAll(ctx)
    if (approval && !(await approveSnapshot(ctx))) throw new SnapshotRequiredError(reason)
    await ctx.db.transaction((tx) => withSyncLock(tx, () => beginRebuild(tx, schema)), 'sync')
    await withDeferredCheckpoints(ctx.db, (checkpoints) => snapshotPages(ctx, checkpoints))
  } finally {
    ctx.position?.reset()
  }
}

/** Pages /sync/snapshot into the cleared tables, one transaction per group; the last one completes the rebuild. */
async function snapshotPages(ctx: CycleContext, checkpoints: DeferredCheckpoints): Promise<void> {
  const schema = requireSchema(ctx)
  let cursor: SnapshotCursor | null = null
  let rows = 0
  let pages = 0
  let group: SnapshotResponse[] = []
  let groupRows = 0
  const tablesTotal = schema.tables.size
  let tablesDone = 0
  const progress = (): SyncProgress => ({ phase: 'snapshot', rows, pages, tablesDone, tablesTotal })
  ctx.setStatus({ status: 'syncing', retryAt: null, progress: progress() })
  for (;;) {
    const res = await ctx.transport.snapshot({
      client_id: ctx.cfg.clientID,
      cursor,
      limit: ctx.cfg.snapshotPageSize,
      ...schemaPair(ctx),
    })
    group.push(res)
    groupRows += res.records.length
    if (!res.has_more || groupRows >= APPLY_GROUP_ROWS) {
      const pagesToApply = group
      group = []
      groupRows = 0
      if (res.has_more) await checkpoints.defer()
      await ctx.db.transaction(
        (tx) =>
          withSyncLock(tx, async () => {
            await applySnapshotGroup(
              tx,
              schema.tables,
              pagesToApply.map((p) => p.records),
            )
            await unmarkStale(
              tx,
              pagesToApply.flatMap((p) => p.records),
            )
            if (!res.has_more) {
              await finishRebuild(tx, schema)
              await setMeta(tx, 'checkpoint', String(res.checkpoint))
              await setMeta(tx, 'snapshot_complete', '1')
              await clearUnreceived(tx)
            }
          }),
        'sync',
      )
    }
    rows += res.records.length
    pages++
    // The cursor names the table the next page starts in: every table before it is complete.
    tablesDone = res.has_more && res.cursor ? Math.min(res.cursor.table_idx, tablesTotal) : tablesTotal
    ctx.setStatus({ status: 'syncing', retryAt: null, progress: progress() })
    if (!res.has_more) return
    if (!res.cursor) throw new InvalidResponseError('snapshot has_more without cursor')
    cursor = res.cursor
  }
}

/** Every approver must say yes; one that throws says no. */
async function approveSnapshot(ctx: CycleContext): Promise<boolean> {
  for (const approve of [...ctx.snapshotApprovers]) {
    let ok: boolean
    try {
      ok = (await approve()) === true
    } catch {
      ok = false
    }
    if (!ok) return false
  }
  return true
}
