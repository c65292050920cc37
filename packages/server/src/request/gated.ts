import type pg from 'pg'
import type { EngineContext } from '../core/context.js'
import { DeadlineExceededError, deadlineSettings, type RequestDeadline, watchProgress } from '../limits/deadline.js'
import { type CommitQuery, inlined, inlinedCall, lostPreparedStatement, prepareAfter } from './open.js'

/**
 * A whole request transaction in one round trip (two under a finite deadline, see below), for a request whose work is one statement that makes the opening's
 * checks itself (a gated pull page, pull/page.ts — it reads and writes nothing unless the catalog fingerprint is the
 * cached contract's and the client row is as required, and reports what it found):
 *
 *   BEGIN; SELECT set_config('app.user_id', …, true), <settings>; <the statement (inlinedCall)>; COMMIT
 *
 * `openRequest` + `queryThenCommit` take two round trips for the same work. The caller interprets the statement's
 * rows, and takes the `openRequest` path whenever the gate was closed (so every error and hook is exactly that
 * path's). Returns undefined, having sent nothing, when a value cannot travel as a literal — or having rolled back,
 * when the connection's prepared statement was missing (`lostPreparedStatement`). Under a finite deadline (the HTTP
 * handler's default) the COMMIT goes in a round trip of its own, after checking the deadline: a stalled database is
 * answered 503 within the deadline and the late transaction rolls back, so the answer never contradicts the database
 * (reliability `stall` test). Without one, it travels with the statement. After a closed gate the fallback runs in
 * the deadline's commit phase, bounded by its transaction's statement timeout instead.
 */
export async function runGated<R extends object>(
  ctx: EngineContext,
  userId: string,
  opts: { settings?: { [name: string]: string }; deadline?: RequestDeadline },
  query: CommitQuery & { prepare: string },
): Promise<R[] | undefined> {
  const db = await ctx.pool.connect()
  const unwatch = watchProgress(db, opts.deadline)
  try {
    opts.deadline?.check() // answered 503 while waiting for a connection: do nothing
    const settings = Object.entries({ ...opts.settings, ...deadlineSettings(opts.deadline) })
    const open = inlined(
      db,
      `SELECT set_config('app.user_id', $1, true)${settings.map(([name], i) => `, set_config('${name}', $${i + 2}, true)`).join('')}`,
      [userId, ...settings.map(([, value]) => value)],
    )
    const call = open === undefined ? undefined : inlinedCall(db, query.text, query.values, query.prepare)
    if (open === undefined || call === undefined) {
      unwatch()
      db.release()
      return undefined
    }
    // Without a finite deadline the COMMIT travels with the statement. With one, it must stay cut-off-able until the
    // COMMIT: a database that stalls while the opening runs gets a 503 within the deadline, and the late statement
    // then rolls back (COMMIT in a round trip of its own, as openRequest's).
    const bounded = opts.deadline !== undefined && Number.isFinite(opts.deadline.timeoutMs)
    if (!bounded) opts.deadline?.beginCommit()
    const results = (await db.query({
      text: `BEGIN;\n${open};\n${call}${bounded ? '' : ';\nCOMMIT'}`,
      types: query.types,
    })) as unknown as pg.QueryResult<R>[]
    if (bounded) {
      if (opts.deadline?.expired) {
        await db.query('ROLLBACK')
        throw new DeadlineExceededError()
      }
      opts.deadline?.beginCommit()
      await db.query('COMMIT')
    }
    unwatch()
    await prepareAfter(db, query.prepare, query.text)
    db.release()
    return results[results.length - (bounded ? 1 : 2)]?.rows ?? []
  } catch (err) {
    const rolledBack = await db.query('ROLLBACK').then(
      () => true,
      () => false,
    )
    unwatch()
    db.release(rolledBack ? undefined : true)
    // A prepared statement gone missing (a pooler in between): nothing was written, the caller's other path runs.
    if (rolledBack && lostPreparedStatement(err)) return undefined
    throw err
  }
}
