import type pg from 'pg'
import { type ClientRow, defaultSubscriptions, type EngineContext } from '../engine/context.js'
import { BadRequestError, ClientNotRegisteredError, SchemaMismatchError, StaleClientRejectedError } from '../errors.js'
import { DeadlineExceededError, deadlineSettings, type RequestDeadline, watchProgress } from '../limits/deadline.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { safeErrorFacts } from '../util/log.js'
import { quoteIdent } from '../util/sql.js'
import { sqlRfc3339, trimRfc3339 } from '../util/time.js'

/** Alias of the application table in every row-rendering query (`to_json(_s.*)` is unambiguous even with a column `_s`). */
export const ROW_ALIAS = '_s'

/** PostgreSQL caps function arguments at 100: 50 key/value pairs per json_build_object call. */
const PAIRS_PER_CALL = 50

/** Go renders a missing timestamp as the zero time; `updated_at` is always present on the wire. */
const ZERO_TIMESTAMP = '0001-01-01T00:00:00Z'

/**
 * SQL expression rendering one row of `t` (aliased `alias`) as the `data` object of a Record (§1.5, Decision 14):
 * PostgreSQL's own JSON rendering (µs timestamps with offset, numerics, arrays, bytea hex, jsonb nested), restricted
 * to the synced columns of the current contract when the table has `syncColumns`.
 */
export function dataJsonSql(t: ResolvedTable, contract: SchemaContract, alias: string = ROW_ALIAS): string {
  if (!t.syncColumns) return `to_json(${alias}.*)`
  // The contract's column list is the catalog ∩ syncColumns: a configured name that does not exist is skipped
  // instead of failing every query, and /sync/schema describes exactly what `data` carries (Decision 31).
  const names = (contract.columns.get(t.tableName) ?? []).map((c) => c.name)
  if (names.length === 0) return `'{}'::json`
  const calls: string[] = []
  for (let i = 0; i < names.length; i += PAIRS_PER_CALL) {
    const pairs = names
      .slice(i, i + PAIRS_PER_CALL)
      .map((n) => `'${n.replaceAll("'", "''")}', ${alias}.${quoteIdent(n)}`)
      .join(', ')
    calls.push(
      calls.length === 0 && names.length <= PAIRS_PER_CALL
        ? `json_build_object(${pairs})`
        : `jsonb_build_object(${pairs})`,
    )
  }
  return calls.length === 1 ? (calls[0] as string) : `(${calls.join(' || ')})::json`
}

/**
 * The select list every row-returning query shares: `id` (PK as text), `data`, `updated_at`, `deleted_at`
 * (both timestamps as µs RFC 3339 text, never through a JS Date).
 */
export function recordColumnsSql(
  t: ResolvedTable,
  contract: SchemaContract,
  alias: string = ROW_ALIAS,
  opts: { deletedAt?: boolean } = {},
): string {
  return [
    `${alias}.${t.q.id}::text AS id`,
    `${dataJsonSql(t, contract, alias)} AS data`,
    `${sqlRfc3339(`${alias}.${t.q.updatedAt}`)} AS updated_at`,
    // Snapshots only read live rows: no need to format a column known to be NULL.
    opts.deletedAt === false ? 'NULL::text AS deleted_at' : `${sqlRfc3339(`${alias}.${t.q.deletedAt}`)} AS deleted_at`,
  ].join(',\n       ')
}

/** A row as `recordColumnsSql` returns it. */
export interface RecordRow {
  id: string
  data: { [column: string]: unknown }
  updated_at: string | null
  deleted_at: string | null
}

/** Wire form of `updated_at`. */
export function wireUpdatedAt(row: { updated_at: string | null }): string {
  return trimRfc3339(row.updated_at) ?? ZERO_TIMESTAMP
}

/** The PostgreSQL type of `t`'s primary key (as format_type prints it), from the current contract. */
export function idTypeOf(t: ResolvedTable, contract: SchemaContract): string | undefined {
  return contract.columns.get(t.tableName)?.find((c) => c.name === t.idColumn)?.db_type
}

/**
 * PostgreSQL text cannot hold NUL: a request string carrying one would fail inside the driver (HTTP 500). Such a
 * string can never name a client, table, bucket or row, so the request is malformed: 400.
 */
export function rejectNul(values: readonly (string | undefined)[]): void {
  for (const v of values) {
    if (v?.includes('\u0000')) throw new BadRequestError('invalid request body')
  }
}

/** Unique values, first occurrence wins (keeps the caller's order). */
export function unique(values: readonly string[]): string[] {
  return [...new Set(values)]
}

/** Error facts safe to log (name, code, message): never SQL parameters or row data. */
export function errorFacts(err: unknown): { [key: string]: unknown } {
  return safeErrorFacts(err, false)
}

/** An open request transaction (see `openRequest`). */
export interface RequestTx {
  db: pg.PoolClient
  contract: SchemaContract
  client: ClientRow
  /** COMMIT and give the connection back. */
  commit(): Promise<void>
  /** ROLLBACK (best effort) and give the connection back; a connection that cannot roll back is discarded. */
  abort(): Promise<void>
}

/**
 * The common start of a pull or snapshot page, in as few round trips as possible: `BEGIN`, then ONE statement that
 * sets `app.user_id` for the transaction (RLS, §2.6), reads the catalog fingerprint (Decision 12, as fresh as a
 * separate check: it runs after the request arrived) and the caller's client row. Then, in the order of §1.3: schema
 * pair (409, the bootstrap pair included), client row (404), deactivated client → onStaleClient (403 when it rejects).
 *
 * When the fingerprint is not the cached contract's (DDL happened), the connection is released *before* the contract
 * is rebuilt (the rebuild needs pool connections of its own: holding one here could deadlock a small pool), then the
 * request starts over. Likewise around the onStaleClient hook (user code).
 */
export async function openRequest(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version: number; schema_hash: string },
  opts: { begin?: string; settings?: { [name: string]: string }; deadline?: RequestDeadline } = {},
): Promise<RequestTx> {
  const settings = Object.entries({ ...opts.settings, ...deadlineSettings(opts.deadline) })
  const setSql = settings.map(([name], i) => `, set_config('${name}', $${i + 4}, true)`).join('')
  const sql = `SELECT set_config('app.user_id', $1, true)${setSql}, ${ctx.contracts.fingerprintSql('$3')} AS fp,
       c.id::text AS id, c.bucket_subs, c.last_pull_seq::text AS last_pull_seq, c.is_active
  FROM (SELECT 1) one
  LEFT JOIN sync_clients c ON c.user_id = $1 AND c.client_id = $2`
  const params = [userId, req.client_id, ctx.contracts.fingerprintParam(), ...settings.map(([, v]) => v)]
  let known: { fp: string; contract: SchemaContract } | undefined
  let staleAccepted = false
  for (;;) {
    const db = await ctx.pool.connect()
    const unwatch = watchProgress(db, opts.deadline)
    let done = false
    const finish = async (how: 'COMMIT' | 'ROLLBACK'): Promise<void> => {
      if (done) return
      done = true
      // Answered 503 meanwhile (deadline): the bookkeeping of a response never sent must not commit.
      const expired = how === 'COMMIT' && opts.deadline?.expired === true
      if (how === 'COMMIT' && !expired) opts.deadline?.beginCommit()
      const command = expired ? 'ROLLBACK' : how
      let broken = false
      try {
        await db.query(command)
      } catch (err) {
        broken = true
        if (command === 'COMMIT') {
          await db.query('ROLLBACK').catch(() => {})
          unwatch()
          db.release(true)
          throw err
        }
      }
      unwatch()
      db.release(broken ? true : undefined)
      if (expired) throw new DeadlineExceededError()
    }
    const tx: RequestTx = {
      db,
      contract: undefined as unknown as SchemaContract,
      client: undefined as unknown as ClientRow,
      commit: () => finish('COMMIT'),
      abort: () => finish('ROLLBACK'),
    }
    try {
      opts.deadline?.check() // answered 503 while waiting for a connection: do nothing
      await db.query(opts.begin ?? 'BEGIN')
      const { rows } = await db.query<{
        fp: string
        id: string | null
        bucket_subs: string[] | null
        last_pull_seq: string | null
        is_active: boolean | null
      }>(sql, params)
      const r = rows[0]
      if (!r) throw new Error('request: opening statement returned no row')
      const contract = ctx.contracts.cachedFor(r.fp) ?? (known?.fp === r.fp ? known.contract : undefined)
      if (!contract) {
        await tx.abort()
        known = { fp: r.fp, contract: await ctx.contracts.forFingerprint(r.fp) }
        continue
      }
      if (contract.version !== req.schema_version || contract.hash !== req.schema_hash) {
        throw new SchemaMismatchError(contract.version, contract.hash)
      }
      if (r.id === null) throw new ClientNotRegisteredError()
      if (!r.is_active && ctx.hooks.onStaleClient && !staleAccepted) {
        // User code: never run it while holding a connection in an open transaction (a hook querying the same small
        // pool would wait forever). Rare path (deactivated clients): release, ask, start over.
        await tx.abort()
        const ok = await ctx.hooks.onStaleClient({ userId, clientId: req.client_id })
        if (!ok) throw new StaleClientRejectedError()
        staleAccepted = true
        continue
      }
      const subs = r.bucket_subs ?? []
      tx.contract = contract
      tx.client = {
        id: r.id,
        userId,
        clientId: req.client_id,
        bucketSubs: subs.length > 0 ? subs : defaultSubscriptions(userId),
        lastPullSeq: r.last_pull_seq === null ? null : Number(r.last_pull_seq),
        isActive: r.is_active === true,
      }
      return tx
    } catch (err) {
      await tx.abort()
      throw err
    }
  }
}

/** A stored row left out of a page because its `data` nests deeper than `maxJsonDepth` (Decision 35). */
export interface Unrenderable {
  table: string
  id: string
  /** Changelog operation code (1 create, 2 update). */
  operation: number
}

const UNRENDERABLE_TEXT = 'row data nested deeper than maxJsonDepth: left out of pull and snapshot pages'

/**
 * One `sync_rule_failures` row per left-out record (not repeated on every page that meets it) and a log line without
 * row data. Diagnostics, after the page's own commit: its failure is logged and never fails the page.
 */
export async function recordUnrenderable(ctx: EngineContext, rows: readonly Unrenderable[]): Promise<void> {
  if (rows.length === 0) return
  ctx.logger.warn(
    { count: rows.length, tables: unique(rows.map((r) => r.table)), maxJsonDepth: ctx.limits.maxJsonDepth },
    'rows nested too deeply to render were left out of a page (see sync_rule_failures)',
  )
  await ctx.pool
    .query(
      `INSERT INTO sync_rule_failures (table_name, record_id, operation, error_text)
     SELECT x.t, x.id, x.op, $4
       FROM unnest($1::text[], $2::text[], $3::smallint[]) AS x(t, id, op)
      WHERE NOT EXISTS (SELECT 1 FROM sync_rule_failures f
                         WHERE f.table_name = x.t AND f.record_id = x.id AND f.error_text = $4)`,
      [rows.map((r) => r.table), rows.map((r) => r.id), rows.map((r) => r.operation), UNRENDERABLE_TEXT],
    )
    .catch((err: unknown) => ctx.logger.warn({ err: errorFacts(err) }, 'could not record unrenderable rows'))
}
