import type pg from 'pg'
import type { RequestTx } from '../request/open.js'
import { EXACT_JSON_TYPES } from '../util/json.js'
import { arrayLiteral, ensurePrepared, forgetPrepared, quoteLiteral, sqlName } from './roundtrip.js'
import type { Statement } from './sql.js'

/**
 * The last write of a push and its COMMIT in one round trip (RequestTx.queryThenCommit): a push of creates then
 * costs two round trips (open, write + COMMIT), one fewer than BEGIN / INSERT / COMMIT.
 *
 * Only a write after which nothing is left to do may commit: every record answered by the statement itself. The
 * statement runs in its `strict` form (sql.ts): an input row it did not write — a create over an existing id, a
 * guard that missed, a row that turned out not writable, a constraint error — fails it before COMMIT, the request
 * transaction rolls back whole (nothing of it is kept), and push runs again without this shortcut (CommitMiss), where
 * such rows are decided again or answered one by one. No savepoint: a failure undoes everything anyway.
 */
export type FinalCommit = RequestTx['queryThenCommit']

/** The speculative COMMIT did not happen: the transaction was rolled back; run the push again without it. */
export class CommitMiss extends Error {
  constructor(cause: unknown) {
    super('push: final write did not commit', { cause })
  }
}

/** A PostgreSQL error (the statement or COMMIT failed) rather than the deadline or the connection. */
export function isDatabaseError(err: unknown): boolean {
  const e = err as { code?: unknown; severity?: unknown }
  return typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && typeof e.severity === 'string'
}

/**
 * `EXECUTE` of the prepared `stmt` with every parameter spelled out as a literal (quoteLiteral: no driver escaping
 * loop over the JSON). An unknown-typed literal coerces to the parameter's type, as `$n` values would not: the
 * opener inlines those as text, and a text[] does not coerce to uuid[]. When a literal holds what looks like a
 * parameter (`$1` in a string), queryThenCommit runs the statement and COMMIT one after the other: still correct.
 */
function executeText(stmt: Statement, json: string, arrays: readonly (readonly (string | null)[])[]): string {
  const literals = [quoteLiteral(json), ...arrays.map((a) => quoteLiteral(arrayLiteral(a)))]
  return `EXECUTE ${sqlName(stmt)}(${literals.join(', ')})`
}

/**
 * Runs `stmt` (strict) with `json` and `arrays` and commits; returns the rows. Throws CommitMiss when PREPARE, the
 * statement or COMMIT failed (the transaction is rolled back, here or by the opener), other errors (deadline,
 * connection) as they are.
 */
export async function writeAndCommit<R extends object>(
  db: pg.PoolClient,
  commit: FinalCommit,
  stmt: Statement,
  json: string,
  arrays: readonly (readonly (string | null)[])[],
): Promise<R[]> {
  const text = executeText(stmt, json, arrays)
  try {
    // A failed PREPARE leaves the transaction aborted: the push starts over too (the opener rolls it back).
    await ensurePrepared(db, stmt)
    return await commit<R>({ text, values: [], types: EXACT_JSON_TYPES })
  } catch (err) {
    if (!isDatabaseError(err)) throw err
    if ((err as { code: string }).code === '26000') forgetPrepared(db, stmt)
    throw new CommitMiss(err)
  }
}
