import type { Registry, ResolvedTable } from '../registry/registry.js'
import { accessPredicate } from '../rls/rls.js'
import { memo } from '../util/memo.js'
import { preparedName, quoteIdent } from '../util/sql.js'
import { sqlRfc3339 } from '../util/time.js'
import type { IdKind } from './ids.js'
import type { TableInfo } from './validate.js'

/**
 * SQL of the push hot path. Every statement works on a batch: its rows arrive as one JSON array parameter and
 * PostgreSQL converts each value into the column's type with `jsonb_populate_record(NULL::<table>, …)` (enums,
 * numerics, arrays from JSON arrays, bytea from `\x..` hex text, timestamps at µs) — no hand-written coercion.
 * A batch of one is the per-record fallback, so both paths share the exact same text.
 *
 * Identifiers come from the registry or the catalog and go through quoteIdent; client `data` keys are filtered
 * against the catalog before any of them becomes a column name here. Texts are deterministic per (table, kind,
 * column set) so they are cached and run as named prepared statements.
 */
export interface Statement {
  name: string
  text: string
}

// Per registry: the same table name can be configured differently in two engines of one process.
const caches = new WeakMap<Registry, Map<string, Statement>>()

function statement(registry: Registry, key: string, build: () => string): Statement {
  const cache = memo(caches, registry, () => new Map<string, Statement>())
  return memo(cache, key, () => {
    const text = build()
    return { name: preparedName('synchro_push', text), text }
  })
}

/** `id = ANY($n)` keeps the primary-key index; ids of unknown types are compared as text (never a cast error). */
function idMatch(t: ResolvedTable, kind: IdKind, param = '$1'): string {
  return kind === 'other' ? `t.${t.q.id}::text = ANY(${param}::text[])` : `t.${t.q.id} = ANY(${param})`
}

function writePredicate(registry: Registry, t: ResolvedTable, ref: string): string {
  const p = accessPredicate(registry, t, 'write', ref)
  // Push-enabled tables always have an owner or a parent (registry validation); a table without either is
  // never writable by a client.
  return p ?? 'false'
}

/**
 * Locks and loads the batch's rows of one table that the caller may write (FOR UPDATE). The values come from the
 * locking query itself: in READ COMMITTED that is the newest committed version, so conflict resolution never
 * compares against a stamp a concurrent push has just replaced. Rows the caller may not write are not returned
 * here (see visibilityStatement): the common case — the caller's own rows and new ids — costs one query.
 */
export function lockStatement(registry: Registry, t: ResolvedTable, kind: IdKind): Statement {
  return statement(registry, `lock\u0000${t.tableName}\u0000${kind}`, () => {
    return `SELECT t.${t.q.id}::text AS id, ${sqlRfc3339(`t.${t.q.updatedAt}`)} AS u,
       ${sqlRfc3339(`t.${t.q.deletedAt}`)} AS d, to_jsonb(t) AS data
FROM ${t.sqlName} AS t
WHERE ${idMatch(t, kind)} AND (${writePredicate(registry, t, 't')})
FOR UPDATE OF t`
  })
}

/**
 * The stamps of the batch's rows of one table that the caller may write — no lock, no row data. Push decides from
 * these when the resolver needs nothing else (ConflictResolver.stampsOnly); the writes then carry the stamp they
 * were decided on as a guard, and the rare row that changed in between is re-read with lockStatement and decided
 * again. Rows that end in a conflict are loaded with lockStatement too (their data is the `server_version`).
 */
export function stampStatement(registry: Registry, t: ResolvedTable, kind: IdKind): Statement {
  return statement(registry, `stamps\u0000${t.tableName}\u0000${kind}`, () => {
    return `SELECT t.${t.q.id}::text AS id, ${sqlRfc3339(`t.${t.q.updatedAt}`)} AS u,
       ${sqlRfc3339(`t.${t.q.deletedAt}`)} AS d
FROM ${t.sqlName} AS t
WHERE ${idMatch(t, kind)} AND (${writePredicate(registry, t, 't')})`
  })
}

/**
 * For ids the lock query did not return: which exist (another user's or a global row → forbidden, Decision 6) and
 * whether the caller may read them. No row data. Under RLS the role cannot see other users' rows at all: those ids
 * look missing (not found).
 */
export function visibilityStatement(registry: Registry, t: ResolvedTable, kind: IdKind): Statement {
  return statement(registry, `visible\u0000${t.tableName}\u0000${kind}`, () => {
    const read = accessPredicate(registry, t, 'read', 't') ?? 'true'
    return `SELECT t.${t.q.id}::text AS id, (${read}) IS TRUE AS r
FROM ${t.sqlName} AS t
WHERE ${idMatch(t, kind)}`
  })
}

/** The batch rows: one typed record per JSON object, numbered from 1 in request order. */
function rowsCte(t: ResolvedTable, extra: string): string {
  return `r AS (
  SELECT e.n, x AS v${extra}
  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(j, n)
  CROSS JOIN LATERAL jsonb_populate_record(NULL::${t.sqlName}, e.j) AS x
)`
}

/**
 * `strict` statements (see commit.ts) end the request: they run with COMMIT in the same round trip, so no record may
 * need a second look afterwards. Instead of leaving an input row without an answer, they fail on it — the error comes
 * before COMMIT runs, the transaction rolls back and push starts over without this shortcut. The error is a cast
 * that cannot succeed (SQL has no raise outside PL/pgSQL); it reads the row number, so it is never constant-folded.
 */
function missing(written: string, n: string): string {
  return `CASE WHEN ${written} IS NULL THEN ('synchro push: input row ' || ${n} || ' not written')::uuid END AS miss`
}

/**
 * Inserts new rows. The ownership predicate is evaluated on the incoming row (a child under someone else's
 * parent → ok = false, nothing inserted), so it holds without RLS. ON CONFLICT DO NOTHING turns "an id we could
 * not see" (another user's row under RLS, or a concurrent create) into "no row returned" instead of an error.
 * Returns per input row: n, ok, u (the stored updated_at, NULL when not inserted), data (the stored row's synced
 * columns as JSON text, `TableInfo.dataSql`, see `serverSetVersion`).
 */
export function insertStatement(
  registry: Registry,
  info: TableInfo,
  cols: readonly string[],
  strict = false,
): Statement {
  const t = info.t
  const key = `insert\u0000${t.tableName}\u0000${strict}\u0000${info.dataSql}\u0000${cols.join('\u0000')}`
  return statement(registry, key, () => {
    const ok = `(${writePredicate(registry, t, 'x')}) IS TRUE AS ok`
    const names = cols.map(quoteIdent)
    return `WITH ${rowsCte(t, `, ${ok}`)}, ins AS (
  INSERT INTO ${t.sqlName} AS t (${[...names, t.q.updatedAt].join(', ')})
  SELECT ${[...names.map((c) => `(r.v).${c}`), 'clock_timestamp()'].join(', ')}
  FROM r WHERE r.ok ORDER BY r.n${strict ? '' : `\n  ON CONFLICT (${t.q.id}) DO NOTHING`}
  RETURNING t.${t.q.id} AS id, ${sqlRfc3339(`t.${t.q.updatedAt}`)} AS u, ${info.dataSql} AS data
)
SELECT r.n::int AS n, r.ok, ins.u, ins.data${strict ? `, ${missing('ins.u', 'r.n')}` : ''}
FROM r LEFT JOIN ins ON ins.id = (r.v).${t.q.id} ORDER BY r.n`
  })
}

/** Bumps updated_at to the clock, and always strictly past the stored stamp (Decision 2). */
function stamp(t: ResolvedTable): string {
  return `GREATEST(r.ts, t.${t.q.updatedAt} + interval '1 microsecond')`
}

/**
 * Updates (or resurrects: deleted_at = NULL) rows already checked by push. Parameters: $1 the rows (JSON array),
 * $2 their ids (`id = ANY($2)` gives the planner the index: the ownership predicate alone is estimated so
 * selective that it would hash-join a scan of the whole table), $3 per row the stamp the decision was taken on, as
 * the stamp statement rendered it, or NULL for a row locked by lockStatement. A row whose stamp moved since (a
 * concurrent push) or that is no longer live / deleted / writable is not written: in READ COMMITTED the guard is
 * re-evaluated on the newest version after waiting for its writer, and push decides that record again.
 * Returns n, u, data (the stored row as JSON text, `TableInfo.dataSql`) for the rows it wrote; an input row without a
 * returned n matched nothing.
 */
export function updateStatement(
  registry: Registry,
  info: TableInfo,
  cols: readonly string[],
  resurrect: boolean,
  strict = false,
): Statement {
  const { t, idKind: kind } = info
  const op = resurrect ? 'resurrect' : 'update'
  return statement(
    registry,
    `${op}\u0000${t.tableName}\u0000${kind}\u0000${strict}\u0000${info.dataSql}\u0000${cols.join('\u0000')}`,
    () => {
      const sets = cols.map((c) => `${quoteIdent(c)} = (r.v).${quoteIdent(c)}`)
      sets.push(`${t.q.updatedAt} = ${stamp(t)}`)
      if (resurrect) sets.push(`${t.q.deletedAt} = NULL`)
      const guard = `(r.g IS NULL OR ${sqlRfc3339(`t.${t.q.updatedAt}`)} = r.g)`
      const live = `t.${t.q.deletedAt} IS ${resurrect ? 'NOT ' : ''}NULL`
      return `WITH ${rowsCte(t, ', clock_timestamp() AS ts, ($3::text[])[e.n::int] AS g')}, u AS (
  UPDATE ${t.sqlName} AS t SET ${sets.join(', ')}
  FROM r
  WHERE t.${t.q.id} = (r.v).${t.q.id} AND ${idMatch(t, kind, '$2')} AND ${live} AND ${guard}
    AND (${writePredicate(registry, t, 't')})
  RETURNING r.n::int AS n, ${sqlRfc3339(`t.${t.q.updatedAt}`)} AS u, ${info.dataSql} AS data
)
${finalSelect(['u', 'data'], strict)}`
    },
  )
}

/**
 * Soft-deletes live rows: deleted_at and updated_at get the same fresh stamp. $1 rows, $2 ids (as for updates).
 * A delete needs no stamp guard (it always wins); a row deleted meanwhile is simply not returned.
 * Returns n, u, d per row written.
 */
export function deleteStatement(registry: Registry, t: ResolvedTable, kind: IdKind, strict = false): Statement {
  return statement(registry, `delete\u0000${t.tableName}\u0000${kind}\u0000${strict}`, () => {
    return `WITH ${rowsCte(t, ', clock_timestamp() AS ts')}, u AS (
  UPDATE ${t.sqlName} AS t SET ${t.q.deletedAt} = ${stamp(t)}, ${t.q.updatedAt} = ${stamp(t)}
  FROM r
  WHERE t.${t.q.id} = (r.v).${t.q.id} AND ${idMatch(t, kind, '$2')} AND t.${t.q.deletedAt} IS NULL
    AND (${writePredicate(registry, t, 't')})
  RETURNING r.n::int AS n, ${sqlRfc3339(`t.${t.q.updatedAt}`)} AS u, ${sqlRfc3339(`t.${t.q.deletedAt}`)} AS d
)
${finalSelect(['u', 'd'], strict)}`
  })
}

/** The rows an update / delete wrote (n and `cols` of CTE u); strict: one per input row, or an error. */
function finalSelect(cols: readonly string[], strict: boolean): string {
  if (!strict) return `SELECT n, ${cols.join(', ')} FROM u`
  const out = cols.map((c) => `u.${c}`).join(', ')
  return `SELECT r.n::int AS n, ${out}, ${missing('u.n', 'r.n')} FROM r LEFT JOIN u ON u.n = r.n ORDER BY r.n`
}
