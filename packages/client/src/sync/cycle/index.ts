/**
 * One sync cycle (§4.3): connect when needed (schema, migrate, register), bootstrap with a snapshot, push the
 * queue, then pull (or re-snapshot when a rejection asked for the data again).
 */
import { SchemaMismatchError, ServerError } from '../../errors.js'
import { getMeta } from '../../store/database.js'
import { nextRetryAt } from '../push.js'
import { connect } from './connect.js'
import type { CycleContext } from './context.js'
import { pullAll } from './pull-all.js'
import { pushAll } from './push-all.js'
import { snapshotRebuild } from './snapshot.js'

export { APPLY_GROUP_ROWS, type CycleContext } from './context.js'

/** Schema refreshes (409 → refetch, migrate, re-register) allowed within one cycle. */
const MAX_SCHEMA_REFRESHES = 3

/** Runs one cycle; returns when the earliest record waiting for a retry is due (null: none). */
export async function runCycle(ctx: CycleContext): Promise<number | null> {
  let refreshes = 0
  for (;;) {
    try {
      if (!ctx.connected) await connect(ctx)
      const complete = await ctx.db.run((ex) => getMeta(ex, 'snapshot_complete'))
      if (complete !== '1') await snapshotRebuild(ctx, false, 'initial_sync_required')
      await pushAll(ctx)
      // A rejection whose answer did not carry the server's copy asks for the data again (rejections.ts).
      const refetch = (await ctx.db.run((ex) => getMeta(ex, 'snapshot_complete'))) !== '1'
      // Records waiting for a retry do not hold anything back: rows with queued changes are never overwritten by
      // pulled data, and a wake-up pushes them when due.
      if (refetch) await snapshotRebuild(ctx, false, 'refetch')
      else await pullAll(ctx)
      return await ctx.db.run((ex) => nextRetryAt(ex))
    } catch (err) {
      const stale =
        err instanceof SchemaMismatchError ||
        (err instanceof ServerError && err.status === 404 && /client not registered/.test(err.message)) ||
        (err instanceof ServerError && err.status === 403 && /client rejected as stale/.test(err.message))
      if (stale && refreshes < MAX_SCHEMA_REFRESHES) {
        // 409: fetch the new schema, migrate additively, register with the new pair, retry (no data is dropped).
        // 404 "client not registered": the server lost our registration; registering again is all it takes.
        // 403 "client rejected as stale": registering again reactivates the client (a pull too far behind is then
        // answered snapshot_required, as for any client).
        refreshes++
        ctx.connected = false
        continue
      }
      throw err
    }
  }
}
