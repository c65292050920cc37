import type pg from 'pg'
import { preparedName } from '../util/sql.js'

/**
 * How request statements travel: values inlined as literals (one simple-protocol query can then carry BEGIN, the
 * statement and COMMIT), and SQL prepared statements per connection (`CommitQuery.prepare`).
 */

/** SQL prepared statements per connection (`CommitQuery.prepare`). */
let preparedOn = new WeakMap<pg.PoolClient, Map<string, Prepared>>()
/** False once a prepared statement went missing: a transaction-mode pooler sits between us and PostgreSQL. */
let preparing = true

/**
 * `text` run with `values` on `db` as a protocol-level named statement (parsed and planned once per connection; the
 * name is a hash of the text), unless prepared statements are off. Behind a transaction-mode pooler the name may be
 * unknown to the server connection we get: then prepared statements go off (`lostPreparedStatement`) and the
 * statement runs unnamed. Only for a statement outside a transaction block, which a failure cannot abort.
 */
export async function queryNamed<R extends pg.QueryResultRow>(
  db: pg.PoolClient,
  text: string,
  values: unknown[],
): Promise<R[]> {
  if (preparing) {
    try {
      return (await db.query<R>({ name: preparedName('synchro_q', text), text, values })).rows
    } catch (err) {
      if (!lostPreparedStatement(err)) throw err
    }
  }
  return (await db.query<R>(text, values)).rows
}

/**
 * True (and prepared statements off for the life of the process) when `err` says a statement this connection
 * prepared does not exist: behind a transaction-mode pooler (pgbouncer) a `PREPARE` stays on the server connection
 * that ran it, and the next transaction may get another one. The failed transaction wrote nothing; statements run
 * inlined from then on.
 */
export function lostPreparedStatement(err: unknown): boolean {
  if ((err as { code?: unknown } | null)?.code !== '26000') return false
  preparing = false
  preparedOn = new WeakMap()
  return true
}

/**
 * `text` with its values inlined (see `inlined`) — or, with a `prepare` name the connection has prepared, the same
 * statement run as that SQL prepared statement: `SET LOCAL plan_cache_mode = …; EXECUTE name(…)`. A connection that
 * has not prepared it yet runs the statement as is, then `prepareAfter`.
 *
 * Custom plans (parsed once, planned for each run's values) unless `generic`: then the plan is made once, at the
 * first run after `PREPARE`, and reused (no planning: ≈ 2–4 ms of PostgreSQL CPU less per pull page). A generic plan
 * keeps the access paths chosen when it was made: in the client e2e suite, a pull plan made while the tables were
 * small went on scanning them once they had grown (2.8 s per 1 000-entry page instead of ≈ 12 ms). So a statement run
 * with a generic plan reports the sizes of the relations it reads, and `prepareAfter` prepares it afresh once one of
 * them outgrew the size it had when the plan was made (`outgrown`).
 */
export function inlinedCall(
  db: pg.PoolClient,
  text: string,
  values: readonly unknown[],
  prepare?: string,
  generic = false,
): string | undefined {
  if (prepare === undefined || !preparing || preparedOn.get(db)?.get(prepare)?.ok !== true) {
    return inlined(db, text, values)
  }
  const call = inlined(db, `EXECUTE ${prepare}(${values.map((_, i) => `$${i + 1}`).join(', ')})`, values)
  const mode = generic ? 'force_generic_plan' : 'force_custom_plan'
  return call === undefined ? undefined : `SET LOCAL plan_cache_mode = ${mode};\n${call}`
}

/**
 * After a request's transaction ended on `db` (still checked out): `PREPARE name AS text` unless that was done (or
 * failed) before on this connection — one round trip, once per connection and statement. Its own statement outside
 * any transaction, so whether it exists is never in doubt; a failure is remembered and not retried. `sizes`: the
 * relation sizes a run with a generic plan reported; the first ones after `PREPARE` are those its plan was made for,
 * and once later ones have `outgrown` them, the statement is deallocated and prepared again (its next run plans).
 */
export async function prepareAfter(
  db: pg.PoolClient,
  name: string | undefined,
  text: string,
  sizes?: readonly number[],
): Promise<void> {
  if (name === undefined || !preparing) return
  let statements = preparedOn.get(db)
  if (!statements) {
    statements = new Map()
    preparedOn.set(db, statements)
  }
  const known = statements.get(name)
  if (known && (!known.ok || sizes === undefined)) return
  if (known && sizes) {
    if (!known.sizes) known.sizes = sizes
    if (!outgrown(known.sizes, sizes)) return
    statements.delete(name)
    if (!(await run(db, `DEALLOCATE ${name}`))) return
  }
  statements.set(name, { ok: await run(db, `PREPARE ${name} AS ${text}`) })
}

/** A statement prepared on a connection (`ok`), or that failed to; `sizes`: what its generic plan was made for. */
interface Prepared {
  ok: boolean
  sizes?: readonly number[]
}

/**
 * Whether relations of `planned` sizes (bytes) have outgrown them: one of them more than twice as big plus 64 KiB
 * (tiny tables are planned again every few pages' worth of growth, not on each row). A plan made for the old sizes
 * then costs at most about what doubling the relation costs its best plan; shrinking needs nothing (index paths stay
 * cheap on small relations, and TRUNCATE, VACUUM, ANALYZE and DDL make PostgreSQL plan again anyway).
 */
export function outgrown(planned: readonly number[], now: readonly number[]): boolean {
  return now.some((size, i) => size > 2 * (planned[i] ?? 0) + 65_536)
}

async function run(db: pg.PoolClient, text: string): Promise<boolean> {
  return db.query(text).then(
    () => true,
    () => false,
  )
}

/**
 * `text` with its `$n` parameters replaced by `values` as SQL literals, or undefined when a value cannot be one or a
 * quoted literal or identifier of `text` contains a `$` (it could be mistaken for a parameter).
 */
export function inlined(db: pg.PoolClient, text: string, values: readonly unknown[]): string | undefined {
  if (text.includes('$') && quotedDollar(text)) return undefined
  const literals = values.map((v) => literal(db, v))
  if (!literals.every((l) => l !== undefined)) return undefined
  return text.replace(/\$(\d+)/g, (_, i: string) => literals[Number(i) - 1] as string)
}

/**
 * True when a `'…'` literal or `"…"` identifier of `text` contains what looks like a parameter (`$` and a digit; a
 * doubled quote just reopens it).
 */
function quotedDollar(text: string): boolean {
  let quote = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (quote !== 0) {
      if (c === quote) quote = 0
      else if (c === 0x24 && isDigit(text.charCodeAt(i + 1))) return true
    } else if (c === 0x27 || c === 0x22) quote = c
  }
  return false
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

/** `value` as an SQL literal, or undefined when it cannot be one. */
function literal(db: pg.PoolClient, value: unknown): string | undefined {
  if (value === null) return 'NULL'
  // A negative number in parentheses: `x-$1` must not become the comment `x--1`.
  if (typeof value === 'number')
    return Number.isSafeInteger(value) ? (value < 0 ? `(${value})` : String(value)) : undefined
  if (typeof value === 'string') return value.includes('\u0000') ? undefined : db.escapeLiteral(value)
  if (Array.isArray(value)) {
    const items = value.map((v) => (typeof v === 'string' ? literal(db, v) : undefined))
    return items.every((i) => i !== undefined) ? `ARRAY[${items.join(', ')}]::text[]` : undefined
  }
  return undefined
}
