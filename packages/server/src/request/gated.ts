import type pg from 'pg'
import type { EngineContext } from '../core/context.js'
import { DeadlineExceededError, deadlineSettings, type RequestDeadline, watchProgress } from '../limits/deadline.js'
import type { CommitQuery } from './open.js'
import { inlined, inlinedCall, lostPreparedStatement, prepareAfter } from './statements.js'

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
 * the deadline's commit phase, bounded by its transaction's statement timeout instead. `shape` turns the rows into
 * the answer (default: the rows), while the COMMIT travels when it has a round trip of its own.
 */
export async function runGated<R extends object, T = R[]>(
  ctx: EngineContext,
  userId: string,
  opts: { settings?: { [name: string]: string }; deadline?: RequestDeadline },
  query: CommitQuery & { prepare: string },
  shape: (rows: R[]) => T = (rows) => rows as unknown as T,
): Promise<T | undefined> {
  return onGatedConnection(ctx, userId, opts, query, async (db, begin) => {
    // Without a finite deadline the COMMIT travels with the statement. With one, it must stay cut-off-able until the
    // COMMIT: a database that stalls while the opening runs gets a 503 within the deadline, and the late statement
    // then rolls back (COMMIT in a round trip of its own, as openRequest's).
    const bounded = opts.deadline !== undefined && Number.isFinite(opts.deadline.timeoutMs)
    if (!bounded) opts.deadline?.beginCommit()
    const results = (await db.query({
      text: `${begin}${bounded ? '' : ';\nCOMMIT'}`,
      types: query.types,
    })) as unknown as pg.QueryResult<R>[]
    const rows = results[results.length - (bounded ? 1 : 2)]?.rows ?? []
    if (!bounded) return { result: shape(rows), rows }
    if (opts.deadline?.expired) {
      await db.query('ROLLBACK')
      throw new DeadlineExceededError()
    }
    opts.deadline?.beginCommit()
    // `shape` (the caller's work on the rows: a pull page's records) runs while the COMMIT travels; its answer
    // counts only once the COMMIT succeeded.
    const commit = db.query('COMMIT')
    let result: T
    try {
      result = shape(rows)
    } catch (err) {
      await commit
      throw err
    }
    await commit
    return { result, rows }
  })
}

/**
 * `runGated` for a statement that writes nothing, whose transaction stays open while `decide` looks at its rows
 * (and whatever else it awaits): `decide` returns the bookkeeping statement to send with the COMMIT — after a
 * deadline check, in the deadline's commit phase — and the result, or undefined to roll back. The result is returned
 * when `commit`'s rows satisfy `accepted` (it wrote what it decided to), undefined otherwise (the caller's other path
 * runs) and, as `runGated`, when a value cannot travel as a literal or the prepared statement was lost.
 */
export async function runGatedThen<R extends object, C extends object, T>(
  ctx: EngineContext,
  userId: string,
  opts: { settings?: { [name: string]: string }; deadline?: RequestDeadline },
  query: CommitQuery & { prepare: string },
  decide: (rows: R[]) => Promise<{ commit: CommitQuery; accepted: (rows: C[]) => boolean; result: T } | undefined>,
): Promise<T | undefined> {
  return onGatedConnection(ctx, userId, opts, query, async (db, begin) => {
    const results = (await db.query({ text: begin, types: query.types })) as unknown as pg.QueryResult<R>[]
    const next = await decide(results[results.length - 1]?.rows ?? [])
    const write = next && inlined(db, next.commit.text, next.commit.values)
    if (write === undefined) await db.query('ROLLBACK')
    else opts.deadline?.beginCommit() // throws when answered 503 meanwhile: rolled back below
    const done =
      write === undefined
        ? undefined
        : ((await db.query({ text: `${write};\nCOMMIT`, types: next?.commit.types })) as unknown as pg.QueryResult<C>[])
    return { result: next && done && next.accepted(done[0]?.rows ?? []) ? next.result : undefined, rows: undefined }
  })
}

/**
 * `run` on a pool connection with the text that opens the transaction and runs `query` (`gatedBegin`); the
 * connection goes back (`query` prepared on it) after `run`, or after a rollback when `run` throws.
 */
async function onGatedConnection<T>(
  ctx: EngineContext,
  userId: string,
  opts: { settings?: { [name: string]: string }; deadline?: RequestDeadline },
  query: CommitQuery & { prepare: string },
  run: (db: pg.PoolClient, begin: string) => Promise<{ result: T; rows: readonly object[] | undefined }>,
): Promise<T | undefined> {
  const db = await ctx.pool.connect()
  const unwatch = watchProgress(db, opts.deadline)
  try {
    const begin = gatedBegin(db, userId, opts, query)
    if (begin === undefined) {
      unwatch()
      db.release()
      return undefined
    }
    const { result, rows } = await run(db, begin)
    unwatch()
    await prepareAfter(db, query.prepare, query.text, rows && query.genericPlan?.sizes(rows))
    db.release()
    return result
  } catch (err) {
    return rollBack(db, unwatch, err)
  }
}

/**
 * `BEGIN;` the opening (app.user_id, settings, deadline timeouts) and `query`, as one text — undefined, having sent
 * nothing, when a value cannot travel as a literal. Throws when the request was answered 503 already.
 */
function gatedBegin(
  db: pg.PoolClient,
  userId: string,
  opts: { settings?: { [name: string]: string }; deadline?: RequestDeadline },
  query: CommitQuery & { prepare: string },
): string | undefined {
  opts.deadline?.check() // answered 503 while waiting for a connection: do nothing
  const settings = Object.entries({ ...opts.settings, ...deadlineSettings(opts.deadline) })
  const open = inlined(
    db,
    `SELECT set_config('app.user_id', $1, true)${settings.map(([name], i) => `, set_config('${name}', $${i + 2}, true)`).join('')}`,
    [userId, ...settings.map(([, value]) => value)],
  )
  const generic = query.genericPlan !== undefined
  const call = open === undefined ? undefined : inlinedCall(db, query.text, query.values, query.prepare, generic)
  return open === undefined || call === undefined ? undefined : `BEGIN;\n${open};\n${call}`
}

/** After a failure: roll back and release; undefined when the prepared statement was lost (nothing was written). */
async function rollBack(db: pg.PoolClient, unwatch: () => void, err: unknown): Promise<undefined> {
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
