import type pg from 'pg'
import type { EngineContext } from '../core/context.js'
import { BadRequestError } from '../errors.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { JSON_TEXT_TYPES } from '../pull/record.js'
import { INTEGER_ID_TYPES, idTypeOf, ROW_ALIAS, TEXT_ID_TYPES } from '../pull/rows.js'
import type { ResolvedTable } from '../registry/registry.js'
import { openRequest, type RequestTx } from '../request/open.js'
import { inlined } from '../request/statements.js'
import { accessPredicate, contractColumnTypes } from '../rls/rls.js'
import type { SchemaContract } from '../schema/contract.js'
import { blockRows } from './block.js'
import { convertRows, recordPlan, StampNotUtc } from './convert.js'
import { copyOut } from './copy-out.js'
import type { TextRow } from './readahead.js'
import { pageColumnsSql } from './render.js'

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/**
 * How one table is walked: the ORDER BY key, the "after the cursor" condition for a given `after_id`, and the "up to"
 * condition for a bound that is an id of the table (as `id::text` renders it).
 */
interface Keyset {
  order: string
  after(param: string, afterId: string): string
  upTo(param: string): string
}

/**
 * Keyset paging in an order the primary-key index can serve, wherever one exists:
 * - uuid: uuid order is the byte order of the canonical text form, i.e. `id::text COLLATE "C"` order (what §3 E 58
 *   asks for), so `ORDER BY id` walks the PK index. A non-uuid `after_id` is compared as text in that same order.
 * - text/varchar: the column's own collation (the PK index's order).
 * - smallint/integer/bigint: numeric order (the cursor is opaque to clients; text order of numbers would need a
 *   sort of the whole table per page). A non-integer `after_id` → 400.
 * - anything else: `id::text COLLATE "C"`, which cannot use an index: each page sorts the readable rows of the table
 *   (top-N), so a snapshot of such a table costs O(rows × pages). Documented in docs/architecture.md.
 */
function keysetFor(t: ResolvedTable, idType: string | undefined): Keyset {
  const id = `${ROW_ALIAS}.${t.q.id}`
  const asText = `${id}::text COLLATE "C"`
  if (idType === 'uuid') {
    return {
      order: id,
      after: (p, afterId) => (UUID_RE.test(afterId) ? `${id} > ${p}::uuid` : `${asText} > ${p}`),
      upTo: (p) => `${id} <= ${p}::uuid`,
    }
  }
  if (idType && TEXT_ID_TYPES.test(idType))
    return { order: id, after: (p) => `${id} > ${p}`, upTo: (p) => `${id} <= ${p}` }
  if (idType && INTEGER_ID_TYPES.has(idType)) {
    return {
      order: id,
      after: (p, afterId) => {
        if (!/^-?\d{1,19}$/.test(afterId)) throw new BadRequestError('invalid cursor')
        const n = BigInt(afterId)
        if (n < INT64_MIN || n > INT64_MAX) throw new BadRequestError('invalid cursor')
        return `${id} > ${p}::bigint`
      },
      upTo: (p) => `${id} <= ${p}::bigint`,
    }
  }
  return { order: asText, after: (p) => `${asText} > ${p}`, upTo: (p) => `${asText} <= ${p}` }
}

/**
 * The planner misjudges the ownership predicate (`owner::text = current_setting(...)`, estimated at 0.5 % of the rows)
 * and picks a full scan + top-N sort per page: O(table) per page, O(table²/page) per snapshot. Walking the
 * primary-key index in keyset order instead costs O(table) for the *whole* snapshot, whatever share of the table the
 * caller owns. JIT off: a disabled plan node's cost would cross `jit_above_cost`, and compiling costs more than such
 * a page takes. Transaction-local (set_config(..., true)), so nothing leaks to other requests.
 */
const PAGE_SETTINGS = { enable_seqscan: 'off', enable_sort: 'off', jit: 'off' }

/**
 * A snapshot page's request transaction (`openRequest`: client row, schema pair), REPEATABLE READ READ ONLY with
 * the page settings — or, without `transaction`, the opening statement alone (a page served from read-ahead rows).
 * `background`: a read-ahead read, not a request of the client (`OpenOptions.background`).
 */
export function openPage(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version?: number; schema_hash?: string },
  transaction: boolean,
  opts: { deadline?: RequestDeadline; background?: boolean; staleAccepted?: boolean } = {},
): Promise<RequestTx> {
  return openRequest(ctx, userId, req, {
    access: 'read',
    begin: transaction ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : null,
    settings: transaction ? PAGE_SETTINGS : undefined,
    ...opts,
  })
}

/** A statement of the page and how it runs (see `snapshot`). */
export type Run = (query: { text: string; values: unknown[]; types?: pg.CustomTypesConfig }) => Promise<TextRow[]>

/**
 * Up to `limit` live rows of `t` the caller may read (Decision 5), after `afterId` in keyset order — and, with
 * `upTo` (an id of the table), none after it. One row per record: node-pg's per-row parsing measured faster than one
 * aggregated JSON text (string_agg / json_agg, +30 %).
 */
export async function readTable(
  ctx: EngineContext,
  run: Run,
  contract: SchemaContract,
  t: ResolvedTable,
  afterId: string,
  limit: number,
  upTo?: string,
): Promise<TextRow[]> {
  const query = pageQuery(ctx, contract, t, pageColumnsSql(t, contract), afterId, limit, upTo)
  return run({ ...query, types: JSON_TEXT_TYPES })
}

/**
 * `readTable` with the records rendered in this process (snapshot/convert.ts): the rows' plain text output read by
 * one `COPY … TO STDOUT` (values inlined, DateStyle ISO for it) on `db`, inside its transaction. Undefined, with
 * nothing changed, when the table's records or a value cannot take that path (`recordPlan`, `inlined`), or when a
 * column's `to_json` may follow DateStyle (`RecordPlan.followsDateStyle`) and the session's is not ISO.
 *
 * The wire stamps are read from the updated-at column's own text (`RecordPlan.selectColumnStamp`) until a row's is
 * not at +00 — a session TimeZone other than UTC: that read runs again with the UTC column, and so do the later reads
 * on that connection (`utcColumnNeeded`).
 */
export async function readTableWire(
  ctx: EngineContext,
  db: pg.PoolClient,
  contract: SchemaContract,
  t: ResolvedTable,
  afterId: string,
  limit: number,
  upTo?: string,
): Promise<TextRow[] | undefined> {
  const plan = wireIdType(t, contract) ? recordPlan(t, contract, ROW_ALIAS) : undefined
  if (!plan) return undefined
  const copy = (select: string) => {
    const query = pageQuery(ctx, contract, t, select, afterId, limit, upTo)
    const text = inlined(db, query.text, query.values)
    return text === undefined ? undefined : `SET LOCAL DateStyle = 'ISO, MDY';\nCOPY (${text}) TO STDOUT`
  }
  // Both select lists inline the same values: one that cannot be inlined rules out both.
  const columnStamp = copy(plan.selectColumnStamp)
  if (columnStamp === undefined) return undefined
  if (plan.followsDateStyle && !(await isoDateStyle(db))) return undefined
  const depth = ctx.limits.maxJsonDepth
  if (!utcColumnNeeded.has(db)) {
    try {
      return blockRows(await copyOut(db, columnStamp, (bytes) => convertRows(bytes, plan, depth, true)))
    } catch (err) {
      if (!(err instanceof StampNotUtc)) throw err
      utcColumnNeeded.add(db)
    }
  }
  const withUtc = copy(plan.select) as string
  return blockRows(await copyOut(db, withUtc, (bytes) => convertRows(bytes, plan, depth)))
}

/** Connections whose session TimeZone put an updated-at text at an offset other than +00 (see `readTableWire`). */
const utcColumnNeeded = new WeakSet<pg.PoolClient>()

/** True when the DateStyle of `db`'s session (in its transaction) writes ISO dates. */
async function isoDateStyle(db: pg.PoolClient): Promise<boolean> {
  const { rows } = await db.query<{ style: string }>(`SELECT current_setting('DateStyle') AS style`)
  return /^\s*ISO\b/i.test(rows[0]?.style ?? '')
}

/**
 * True when `t`'s ids render the same whatever the session's DateStyle (uuid, text, integers: the keysets an index
 * serves), so that ids read under `readTableWire`'s DateStyle are those every other statement reads.
 */
function wireIdType(t: ResolvedTable, contract: SchemaContract): boolean {
  const idType = idTypeOf(t, contract)
  return idType !== undefined && (idType === 'uuid' || TEXT_ID_TYPES.test(idType) || INTEGER_ID_TYPES.has(idType))
}

/** The statement of `readTable` selecting `select` (from the rows aliased `ROW_ALIAS`). */
function pageQuery(
  ctx: EngineContext,
  contract: SchemaContract,
  t: ResolvedTable,
  select: string,
  afterId: string,
  limit: number,
  upTo?: string,
): { text: string; values: unknown[] } {
  const { keyset, where, params } = rowsAfter(ctx, contract, t, afterId, limit, true)
  if (upTo !== undefined) {
    params.push(upTo)
    where.push(keyset.upTo(`$${params.length}`))
  }
  where.push(notRewritten(t))
  // Render JSON only for the rows of the page: the inner query pages by the key, the outer one renders.
  return {
    text: `SELECT ${select}
       FROM (SELECT ${ROW_ALIAS}.*
               FROM ${t.sqlName} ${ROW_ALIAS}
              WHERE ${where.join('\n                AND ')}
              ORDER BY ${keyset.order}
              LIMIT $1) ${ROW_ALIAS}
      ORDER BY ${keyset.order}`,
    values: params,
  }
}

/** What the statement of a page whose table was rewritten fails with (see `notRewritten`). */
const REWRITTEN = 'synchro: table rewritten since the page began: '

/**
 * A condition that fails the statement when `t` (or one of its partitions) was rewritten (ALTER TABLE forms that
 * rewrite, SET LOGGED, …) after the page's snapshot was taken. Such a rewrite is not MVCC-safe: an older snapshot sees
 * the new file empty, so the page would read no rows, take the table for done and move on — the rest of the table
 * never reaching the client. The transaction snapshot predates the table lock (the opening statement reads no
 * application table), so a rewrite can commit in between. A relation's pg_class row as the snapshot sees it names the
 * file it had then; the relation cache names the current one. One InitPlan per statement; relations without a file
 * of their own (a partitioned parent, a view) are skipped; a partitioned table is checked through its partitions (one
 * level: those of a sub-partitioned partition are not). Index lookups only (the `UNION ALL`: an `OR` of the two
 * made PostgreSQL scan pg_class).
 */
function notRewritten(t: ResolvedTable): string {
  const rel = `'${t.sqlName.replaceAll("'", "''")}'::regclass`
  return `(SELECT CASE WHEN count(*) = 0 THEN true ELSE ('${REWRITTEN}' || min(c.relname))::int = 0 END
           FROM (SELECT ${rel}::oid AS oid UNION ALL SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = ${rel}) r
           JOIN pg_class c ON c.oid = r.oid
          WHERE c.relfilenode <> 0 AND c.relfilenode IS DISTINCT FROM pg_relation_filenode(c.oid))`
}

/** True when `err` is the failure of `notRewritten`: the page should start again on a fresh snapshot. */
export function isTableRewritten(err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message
  return typeof message === 'string' && message.includes(REWRITTEN)
}

/**
 * The id (as `readTable` returns ids) of the `skip`-th row of `t` the caller may read after `afterId`, deleted rows
 * counted too, or undefined when there are fewer: a bound such that the rows after `afterId` up to it hold at most
 * `skip` live rows. Soft-deleted rows count so that the walk needs nothing but the key index (an index-only scan
 * where the owner and the key share one: no row is fetched or rendered).
 */
export async function boundAfter(
  ctx: EngineContext,
  db: pg.ClientBase,
  contract: SchemaContract,
  t: ResolvedTable,
  afterId: string,
  skip: number,
): Promise<string | undefined> {
  const { keyset, where, params } = rowsAfter(ctx, contract, t, afterId, skip - 1, false)
  const { rows } = await db.query<{ id: string }>({
    text: `SELECT ${ROW_ALIAS}.${t.q.id}::text AS id
             FROM ${t.sqlName} ${ROW_ALIAS}
            WHERE ${where.join('\n              AND ')}
            ORDER BY ${keyset.order}
           OFFSET $1 LIMIT 1`,
    values: params,
  })
  return rows[0]?.id
}

/**
 * The keyset and WHERE conditions of `t`'s rows the caller may read (only live ones with `live`) after `afterId`;
 * parameters: `$1` = `first`, `$2` = `afterId`.
 */
function rowsAfter(
  ctx: EngineContext,
  contract: SchemaContract,
  t: ResolvedTable,
  afterId: string,
  first: unknown,
  live: boolean,
): { keyset: Keyset; where: string[]; params: unknown[] } {
  const keyset = keysetFor(t, idTypeOf(t, contract))
  const where = live ? [`${ROW_ALIAS}.${t.q.deletedAt} IS NULL`] : []
  const read = accessPredicate(ctx.registry, t, 'read', ROW_ALIAS, contractColumnTypes(contract))
  if (read) where.push(read)
  const params: unknown[] = [first]
  if (afterId !== '') {
    params.push(afterId)
    where.push(keyset.after('$2', afterId))
  }
  if (where.length === 0) where.push('true')
  return { keyset, where, params }
}
