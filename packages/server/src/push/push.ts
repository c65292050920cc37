import { MAX_PUSH_CHANGES, type PushRequest, type PushResponse, WIRE_ERRORS } from '@synchro/protocol'
import type { EngineContext } from '../core/context.js'
import { BadRequestError } from '../errors.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { inRequest } from '../request/open.js'
import { nowRfc3339 } from '../util/time.js'
import { CommitMiss } from './commit.js'
import { pushInOneTrip, rememberOpened } from './gate.js'
import { PushRun } from './run.js'

/**
 * POST /sync/push (PROTOCOL.md §1.5, §3 F–H, Decisions 2–4, 6, 14, 18, 23, 27–29).
 *
 * One transaction per request with `app.user_id` set. Records are processed in request order, but written in
 * batches: the state of each table's rows is pre-loaded with one query, decisions (ownership, existence, conflict
 * resolution) are taken in memory, and consecutive writes of the same shape run as one statement under a
 * savepoint. With a stamps-only resolver the pre-load reads stamps without locking and the writes are guarded by
 * the stamp they were decided on. When a statement fails, its batch is rolled back to the savepoint and replayed
 * one record per savepoint, so one bad record never sinks the others (Decision 3) while the common case costs one
 * statement per batch instead of three round trips per record.
 *
 * The steps, one file each: validate.ts (checks a record, no database), rows.ts (the state of the touched rows),
 * decide.ts (ownership / existence / conflict outcome, pure), writer.ts (batched statements under savepoints),
 * run.ts (one request: drives the others).
 */
export async function push(
  ctx: EngineContext,
  userId: string,
  req: PushRequest,
  deadline?: RequestDeadline,
): Promise<PushResponse> {
  const changes = req.changes ?? []
  if (changes.length > MAX_PUSH_CHANGES)
    throw new BadRequestError(WIRE_ERRORS.too_many_changes.message, 'too_many_changes')
  const hook = ctx.hooks.onPushAccepted
  // Schema pair (409), client row (404, stale → 403) and the push mark on it: the statement opening the transaction.
  const once = (finalCommit: boolean) =>
    inRequest(ctx, userId, req, { access: 'push', deadline }, async (tx) => {
      if (changes.length === 0) return { contract: tx.contract, results: [] }
      // Without a hook nothing follows the writes: the last one may commit the transaction (commit.ts).
      const commit = finalCommit && !hook ? tx.queryThenCommit : undefined
      rememberOpened(ctx, tx.fingerprint, tx.contract)
      const results = await new PushRun(ctx, tx.db, tx.contract, userId, commit).run(changes)
      const accepted = results.filter((r) => r.status === 'applied')
      // Inside the transaction: a throwing hook rolls back every record (HTTP 500).
      if (accepted.length > 0 && hook) {
        await hook({ userId, clientId: req.client_id, accepted, db: tx.db })
      }
      return { contract: tx.contract, results }
    })
  let outcome: Awaited<ReturnType<typeof once>> | undefined
  try {
    if (changes.length > 0) outcome = await pushInOneTrip(ctx, userId, req, changes, deadline)
    outcome ??= await once(true)
  } catch (err) {
    // The last write could not commit with its statement (rolled back, nothing kept): the usual way, from the start.
    if (!(err instanceof CommitMiss)) throw err
    outcome = await once(false)
  }
  const { contract, results } = outcome
  return {
    accepted: results.filter((r) => r.status === 'applied'),
    rejected: results.filter((r) => r.status !== 'applied'),
    checkpoint: 0,
    server_time: nowRfc3339(),
    schema_version: contract.version,
    schema_hash: contract.hash,
  }
}
