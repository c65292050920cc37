import type pg from 'pg'
import { EXACT_JSON_TYPES } from '../util/json.js'
import type { Statement } from './sql.js'

/**
 * A write statement and the savepoint that guards it in one round trip. The extended protocol (parameters) allows
 * one statement per round trip, so the batch runs as a simple query instead:
 *
 *   SAVEPOINT synchro_push; [PREPARE name AS <text>;] EXECUTE name(<literals>)
 *
 * The statement is prepared with SQL `PREPARE` once per connection (a prepared statement is not undone by a
 * rollback to a savepoint), so its plan is cached as with a protocol-level named statement. Parameters become
 * literals: the JSON rows as one escaped text literal, id and stamp lists as array literals. Their values are
 * canonical ids, stamps rendered by PostgreSQL and JSON text, quoted by `quoteLiteral`.
 *
 * Saves one of the four or five round trips of a typical push (the savepoint's own); on a loaded machine every
 * round trip costs two wake-ups, which is most of a small push's time.
 */

const prepared = new WeakMap<pg.PoolClient, Set<string>>()

/** SQL-level names are kept apart from the driver's protocol-level ones (same namespace on the server). */
export function sqlName(stmt: Statement): string {
  return `${stmt.name}_s`
}

/** The names this connection has `PREPARE`d (as far as we know: see `resyncPrepared`). */
function preparedOn(db: pg.PoolClient): Set<string> {
  let names = prepared.get(db)
  if (!names) {
    names = new Set()
    prepared.set(db, names)
  }
  return names
}

/** `PREPARE`s `stmt` on this connection unless it is already (one round trip the first time). */
export async function ensurePrepared(db: pg.PoolClient, stmt: Statement): Promise<void> {
  const names = preparedOn(db)
  const name = sqlName(stmt)
  if (names.has(name)) return
  await db.query(`PREPARE ${name} AS ${stmt.text}`)
  names.add(name)
}

/** After an error saying the prepared statement does not exist (26000): prepare it again next time. */
export function forgetPrepared(db: pg.PoolClient, stmt: Statement): void {
  prepared.get(db)?.delete(sqlName(stmt))
}

/** An array literal of text elements (NULL for null), as PostgreSQL's array input reads it. */
export function arrayLiteral(values: readonly (string | null)[]): string {
  return `{${values.map((v) => (v === null ? 'NULL' : `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`)).join(',')}}`
}

/**
 * `s` as a quoted SQL literal: what the driver's `escapeLiteral` returns (quotes doubled; with a backslash, an
 * `E'…'` literal with backslashes doubled, right whatever standard_conforming_strings says), built with two native
 * replaces instead of a character loop that grows a string one character at a time — for a batch's 20–40 kB of
 * JSON that loop was ≈ 0.15 ms and most of the garbage a push left behind.
 */
export function quoteLiteral(s: string): string {
  const quoted = s.replaceAll("'", "''")
  return s.includes('\\') ? ` E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`
}

function literal(v: unknown): string {
  if (typeof v === 'string') return quoteLiteral(v)
  if (Array.isArray(v)) return quoteLiteral(arrayLiteral(v as (string | null)[]))
  throw new Error(`push: no literal form for a ${typeof v} parameter`)
}

/**
 * Runs `SAVEPOINT <savepoint>` and then `stmt` with `values` (strings and arrays of strings / nulls) in one round
 * trip; returns the statement's rows. On an error the savepoint may or may not exist (see `savepointSet`).
 */
export async function savepointAndRun<R extends pg.QueryResultRow>(
  db: pg.PoolClient,
  savepoint: string,
  stmt: Statement,
  values: readonly unknown[],
): Promise<R[]> {
  const results = (await db.query({
    text: `${savepoint};\n${executeCall(db, stmt, values)}`,
    types: EXACT_JSON_TYPES,
  })) as unknown as pg.QueryResult<R>[]
  return (results[results.length - 1] as pg.QueryResult<R>).rows
}

/**
 * `EXECUTE` of `stmt` with `values` as literals, preceded by its `PREPARE` when this connection has not prepared it:
 * one or two statements of a simple query, whose last result is the statement's. Marked prepared before the round
 * trip: PREPARE either succeeds or the request fails (the caller then resyncs, forgets or discards the connection).
 */
export function executeCall(db: pg.PoolClient, stmt: Statement, values: readonly unknown[]): string {
  const names = preparedOn(db)
  const name = sqlName(stmt)
  const call = `EXECUTE ${name}(${values.map((v) => literal(v)).join(', ')})`
  if (names.has(name)) return call
  names.add(name)
  return `PREPARE ${name} AS ${stmt.text};\n${call}`
}

/**
 * After a failed `savepointAndRun`: whether the statement is prepared on this connection is read back from the
 * server (the failure may have come before or after PREPARE), so the next call prepares it only when needed.
 */
export async function resyncPrepared(db: pg.PoolClient, stmt: Statement): Promise<void> {
  const name = sqlName(stmt)
  const { rows } = await db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1',
    [name],
  )
  if (rows[0]?.n === 0) prepared.get(db)?.delete(name)
}

/** After a rolled-back request whose statements may or may not have run: what is prepared, read back from the server. */
export async function resyncAllPrepared(db: pg.PoolClient): Promise<void> {
  const { rows } = await db.query<{ name: string }>('SELECT name FROM pg_prepared_statements')
  prepared.set(db, new Set(rows.map((r) => r.name)))
}
