import { OP_DELETE, OP_UPDATE } from '@synchro/protocol'
import { bucketEntries, CHANGELOG_SIZE_SQL, HISTORY_CTE, historyServes, VISIBLE_HEAD_SQL } from '../changelog/reader.js'
import {
  advancePullCte,
  CLIENT_COLUMNS,
  type ClientColumns,
  clientRowJoin,
  clientSubscriptionsSql,
} from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { accessPredicate, contractColumnTypes } from '../rls/rls.js'
import type { SchemaContract } from '../schema/contract.js'
import { memo } from '../util/memo.js'
import { preparedName } from '../util/sql.js'
import { sqlRfc3339 } from '../util/time.js'
import { idTypeOf, ROW_ALIAS, recordColumnsSql } from './rows.js'

/**
 * How a page statement learns whose page it reads.
 * - `opened`: the request transaction was opened first (`openRequest`): $1 the subscriptions, $5 the client row id
 *   (or a uuid no row has: no checkpoint advance).
 * - `gated`: nothing was checked yet (the opening rides in the page's round trip, see pull.ts): $1 the user id, $5
 *   the client id, `tokenParam` the schema token `contract` was built for; the statement reads the client row and
 *   the schema token itself, and reads and writes nothing unless the token is that one, the client row exists and
 *   is active, and it is not a never-snapshotted client pulling from 0. The token travels as a parameter, not in the
 *   text: the text, and so the statement prepared on each connection, stays the same when an epoch changes. Its head row reports that (`ok`) with the client row.
 * - `peek`: `gated` without the checkpoint advance (it writes nothing), its head also carrying the client's
 *   `last_push_at`: a page read ahead of the request that will ask for it (ahead.ts).
 * `capped` (`opened` only, whose pages have no schema token: the last seq takes its placeholder, `tokenParam`): no
 * entry after it — a live frame stands for a range (prev, to] of the buckets that range touched; entries after `to`
 * may belong to a change whose other entries are in buckets the range did not touch (a move's op 1 elsewhere), which
 * the frame's page would then misread.
 */
export type PageMode = { kind: 'opened' | 'gated' | 'peek'; capped?: boolean }

/**
 * The whole page in ONE statement (one MVCC snapshot, one round trip, no ids shipped back and forth):
 * - `h`: the retention facts (changelog/reader.ts).
 * - `e`: up to limit+1 entries (the extra one only tells has_more) — one bounded index scan of (bucket_id, seq) per
 *   subscribed bucket, merged; a LATERAL join because `bucket_id = ANY(...) ORDER BY seq` alone makes PostgreSQL
 *   either sort every matching entry or walk the whole seq index. Skipped when the retention check fails.
 * - `d`: dedup by (table, id), the last entry wins (a hashed anti-join: sorting by (table, id) compared every text
 *   under the collation); entries of tables no longer registered are dropped (they can be neither hydrated nor
 *   applied by a client). An op 3 whose record is still in one of the caller's buckets (its edges) is a change, not
 *   a delete: a record that moves between two buckets the caller subscribes to (a global row given to the user, the
 *   user's row made global) is written op 1 where it enters, then op 3 where it leaves, and the client must keep it.
 *   The op 1 comes first, so the client has it or gets it on this page; a record that left every bucket has no edge.
 * - `r`: per registered table, one index lookup of the ids still to hydrate, rendered to JSON by PostgreSQL and
 *   filtered by the caller's read predicate (Decision 5).
 * - `u`: served pulls only (retention check passed), the checkpoint advance — in the same statement, so it commits
 *   with exactly what was read, and a page that fails (Decision 10) advances nothing. The stored value is the last
 *   returned seq or, under a `tables` filter (Decision 9), just before the first skipped entry of an unlisted table.
 * The rows of `r` as rows, not one aggregated JSON text: node-pg's per-row parsing measured faster than building and
 * parsing one string (string_agg / json_agg of the records: +30 % per page). The entries of `d`, though, travel in the
 * head row with the page facts (and, gated, the client row), as JSON arrays in seq order (`PageHead.entries`): one
 * row per entry cost ≈ 2 ms of PostgreSQL and 2 ms of node-pg per 1 000-entry page, the arrays ≈ 0.3 ms to parse.
 * The rows of `r` come in no particular order (sorting here moved every rendered row through a sort): the caller
 * matches them to their entries by (table, id). No join of `d` and `r` in SQL: with a generic plan (or stale
 * statistics) the planner estimated one entry and rescanned every hydration once per entry (6.5 s for 1 000).
 * Parameters: $1 subscriptions / user id, $2 checkpoint, $3 limit, $4 table names (registration order), $5 client
 * row id / client id, [$6 tables filter], then (gated, peek) the schema token (`tokenParam`).
 */
function pageSql(ctx: EngineContext, contract: SchemaContract, filtered: boolean, mode: PageMode): string {
  const hydrations = ctx.tables.map((t, i) => {
    const idType = idTypeOf(t, contract)
    const ids = `ARRAY(SELECT record_id FROM d WHERE table_name = ($4::text[])[${i + 1}] AND operation <> ${OP_DELETE})`
    // Compare in the PK's own type so the primary-key index serves the lookup (`id::text = ANY` would scan).
    const match = idType
      ? `${ROW_ALIAS}.${t.q.id} = ANY(${ids}::${idType}[])`
      : `${ROW_ALIAS}.${t.q.id}::text = ANY(${ids})`
    const read = accessPredicate(ctx.registry, t, 'read', ROW_ALIAS, contractColumnTypes(contract))
    return `SELECT ($4::text[])[${i + 1}] AS table_name, ${recordColumnsSql(t, contract)}
    FROM ${t.sqlName} ${ROW_ALIAS}
   WHERE ${match}${read ? ` AND ${read}` : ''}`
  })
  const gated = mode.kind !== 'opened'
  const advance = mode.kind !== 'peek'
  const served = `${historyServes('$2')}${gated ? ' AND (SELECT ok FROM o)' : ''}`
  const buckets = gated ? '(SELECT DISTINCT unnest(subs) FROM o)' : 'unnest($1::text[])'
  const last = `(SELECT last FROM k)`
  const stored = filtered ? `LEAST(coalesce(${last}, $2), (SELECT seq FROM sk) - 1)` : `coalesce(${last}, $2)`
  // Decision 36 (staleness follows pull progress): an unfiltered pull that found nothing more to read is caught up.
  const caughtUp = filtered ? 'false' : '(SELECT fetched FROM k) <= $3'
  const facts = [
    `'compacted', h.compacted::text, 'issued', h.issued::text, 'fetched', k.fetched, 'last_seq', k.last::text`,
    ...(gated ? [`'ok', o.ok`, ...CLIENT_HEAD.map((c) => `'${c}', o.${c}`)] : []),
    // Peeks: the highest seq the page could see (in-flight batches have drawn seqs past it, not yet visible).
    ...(advance ? [] : [`'last_push_at', o.last_push_at`, `'visible', (${VISIBLE_HEAD_SQL})::text`]),
  ]
  const entries = `'tables', x.tables, 'ids', x.ids, 'ops', x.ops`
  const head = `json_build_object(${facts.join(', ')}, ${entries})::text AS head`
  return `
WITH ${gated ? `${openingCte(ctx, tokenParam(filtered))},` : ''}${HISTORY_CTE},
e AS MATERIALIZED (
  SELECT c.seq, c.table_name, c.record_id, c.operation
    FROM ${buckets} AS b(id)
   CROSS JOIN LATERAL (
         ${bucketEntries('seq, table_name, record_id, operation', `${filtered ? ' AND table_name = ANY($6::text[])' : ''}${mode.capped ? ` AND seq <= ${tokenParam(filtered)}::bigint` : ''}`)}
          LIMIT $3 + 1) c
   WHERE ${served}
   ORDER BY c.seq
   LIMIT $3 + 1
),
p AS MATERIALIZED (SELECT * FROM e ORDER BY seq LIMIT $3),
d AS MATERIALIZED (
  SELECT p.seq, p.table_name, p.record_id,
         CASE WHEN p.operation = ${OP_DELETE} AND EXISTS (
                SELECT 1 FROM sync_bucket_edges g
                 WHERE g.table_name = p.table_name AND g.record_id = p.record_id
                   AND g.bucket_id IN (SELECT b.id FROM ${buckets} AS b(id)))
              THEN ${OP_UPDATE} ELSE p.operation END AS operation
    FROM p
   WHERE p.table_name = ANY($4::text[])
     AND NOT EXISTS (SELECT 1 FROM p l WHERE l.table_name = p.table_name AND l.record_id = p.record_id AND l.seq > p.seq)
),
r AS (
  ${hydrations.join('\n  UNION ALL\n  ')}
),
k AS (SELECT (SELECT count(*) FROM e) AS fetched, (SELECT max(seq) FROM p) AS last)${
    filtered
      ? `,
sk AS (
  SELECT min(c.seq) AS seq
    FROM ${buckets} AS b(id)
   CROSS JOIN LATERAL (
         ${bucketEntries('seq', ` AND seq <= ${last} AND NOT (table_name = ANY($6::text[]))`)}
          LIMIT 1) c
)`
      : ''
  }${advance ? `,\n${advancePullCte('u', { rowId: gated ? '(SELECT client_row_id FROM o)' : '$5', stored, caughtUp, when: served })}` : ''}
SELECT ${head}, ${relationSizes(ctx)} AS sizes,
       NULL AS table_name, NULL AS id, NULL::text AS data, NULL AS updated_at, NULL AS deleted_at
  FROM h CROSS JOIN k${gated ? ' CROSS JOIN o' : ''}
 CROSS JOIN (SELECT coalesce(json_agg(table_name ORDER BY seq), '[]') AS tables,
                    coalesce(json_agg(record_id ORDER BY seq), '[]') AS ids,
                    coalesce(json_agg(operation ORDER BY seq), '[]') AS ops
               FROM d) x
 UNION ALL
SELECT NULL, NULL, r.table_name, r.id, r.data, r.updated_at, r.deleted_at
  FROM r`
}

/** One row of the page statement (page.ts): the head (the first) or a hydrated row (`head` null). */
export interface PageRow {
  /** The page facts and entries (`PageHead` as JSON), on one row only (`pageHeadOf`). */
  head: string | null
  /** On the head row: the sizes of the relations the statement reads (`PAGE_PLAN`), a JSON array of bytes. */
  sizes: string | null
  table_name: string | null
  id: string | null
  /** The row's JSON text as PostgreSQL rendered it (passed through to the response, see record.ts); null: no row. */
  data: string | null
  updated_at: string | null
  deleted_at: string | null
}

/** The page facts `head` of the statement's rows (the one row carrying them), undefined when there is none. */
export function pageHeadOf(rows: readonly PageRow[]): PageHead | undefined {
  const text = rows.find((r) => r.head !== null)?.head
  return text ? (JSON.parse(text) as PageHead) : undefined
}

/**
 * Page statements run with a generic plan (no planning per page), made again on a connection once a relation they read
 * has outgrown the size it had then (request/statements.ts): the head row reports the sizes.
 */
export const PAGE_PLAN = {
  sizes(rows: readonly object[]): number[] | undefined {
    const text = (rows as readonly PageRow[]).find((r) => r.head !== null)?.sizes
    return text ? (JSON.parse(text) as number[]) : undefined
  },
}

/**
 * The sizes (bytes) of the relations a page statement reads: the registered tables (hydrations, read predicates), the
 * changelog and the clients table. `pg_relation_size` costs a `stat` per relation.
 */
function relationSizes(ctx: EngineContext): string {
  const names = [...ctx.tables.map((t) => t.sqlName), 'sync_clients']
  const sizes = names.map((n) => `pg_relation_size('${n.replaceAll("'", "''")}'::regclass)`)
  return `json_build_array(${[...sizes, CHANGELOG_SIZE_SQL].join(', ')})::text`
}

/** The page facts, in one row's `head` (JSON text: one column instead of one per fact on every row). */
export interface PageHead extends Partial<ClientColumns> {
  /** Peeked pages: the client's `last_push_at` (RFC 3339 text) when the page was read. */
  last_push_at?: string | null
  /**
   * Peeked pages: the highest seq visible when the page was read (the changelog head, or the retention boundary when
   * higher). Every entry committed later has a higher seq: the capture writes one batch at a time.
   */
  visible?: string
  compacted: string
  issued: string
  fetched: number
  last_seq: string | null
  /** Gated pages: whether the opening checks passed. */
  ok?: boolean
  /** The page's entries after dedup, in seq order: table, record id and operation of each, by position. */
  tables: string[]
  ids: string[]
  ops: number[]
}

/** The placeholder of a gated or peek page's schema token: after the tables filter when there is one. */
export function tokenParam(filtered: boolean): string {
  return filtered ? '$7' : '$6'
}

/** The client row columns a gated page's head carries (`CLIENT_COLUMNS`). */
export const CLIENT_HEAD = ['client_row_id', 'bucket_subs', 'last_pull_seq', 'last_sync_at', 'is_active']

/**
 * `o`: the opening facts of a gated page — the schema token compared with the placeholder `token` (the contract's), the
 * caller's client row (placeholders: user id $1, client id $5 unless `p` says otherwise; checkpoint $2), its
 * subscriptions, and `ok`, the gate.
 */
export function openingCte(
  ctx: EngineContext,
  token: string,
  p: { user: string; from: string; client: string } = { user: '$1', from: '$2', client: '$5' },
): string {
  const tables = `ARRAY[${ctx.contracts
    .fingerprintParam()
    .map((n) => `'${n.replaceAll("'", "''")}'`)
    .join(', ')}]`
  return `
o AS MATERIALIZED (
  SELECT ${CLIENT_COLUMNS}, ${sqlRfc3339('c.last_push_at')} AS last_push_at, ${clientSubscriptionsSql(p.user)} AS subs,
         ${ctx.contracts.fingerprintSql(tables)} = ${token}::text
           AND c.id IS NOT NULL AND c.is_active AND NOT (${p.from}::bigint = 0 AND c.last_pull_seq IS NULL) AS ok
    FROM (SELECT 1) one
    ${clientRowJoin(p.user, p.client)}
)`
}

/** A page statement and the name it is prepared under (its hash: equal names, equal texts). */
export interface PageSql {
  text: string
  name: string
}

/** The page SQL depends on the registry (fixed) and the contract (changes with DDL): built once per contract. */
const pageSqlCache = new WeakMap<SchemaContract, Map<EngineContext, Map<string, PageSql>>>()

export function cachedPageSql(
  ctx: EngineContext,
  contract: SchemaContract,
  filtered: boolean,
  mode: PageMode,
): PageSql {
  const byKey = memo(
    memo(pageSqlCache, contract, () => new WeakMap()),
    ctx,
    () => new Map<string, PageSql>(),
  )
  const key = `${filtered}/${mode.kind}/${mode.capped === true}`
  return memo(byKey, key, () => {
    const text = pageSql(ctx, contract, filtered, mode)
    return { text, name: preparedName('synchro_pull', text) }
  })
}
