import type pg from 'pg'
import {
  type Bind,
  CLIENT_COLUMNS,
  type ClientColumns,
  type ClientRow,
  type ClientSource,
  clientRowOf,
  type Registration,
  readClient,
  touchClientForPush,
  upsertClient,
} from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import {
  ClientNotRegisteredError,
  SchemaMismatchError,
  StaleClientRejectedError,
  type SynchroError,
  TooManyClientsError,
} from '../errors.js'
import { DeadlineExceededError, deadlineSettings, type RequestDeadline, watchProgress } from '../limits/deadline.js'
import type { SchemaContract } from '../schema/contract.js'
import { inlined, inlinedCall, lostPreparedStatement, prepareAfter, queryNamed } from './statements.js'

/** An open request transaction (see `openRequest`). */
export interface RequestTx {
  db: pg.PoolClient
  /** The current schema contract (checked against the request's pair as `schema` asked). */
  contract: SchemaContract
  /** The catalog fingerprint `contract` was built for, as the opening statement read it. */
  fingerprint: string
  client: ClientRow
  /** COMMIT and give the connection back. Throws DeadlineExceededError (after a ROLLBACK) once answered 503. */
  commit(): Promise<void>
  /** ROLLBACK (best effort) and give the connection back; a connection that cannot roll back is discarded. */
  abort(): Promise<void>
  /**
   * The request's last statement and its COMMIT in ONE round trip (one simple-protocol query, values inlined as
   * literals), then the connection goes back as with `commit`; its rows are returned. When a value cannot travel as a
   * literal, the statement and COMMIT run one after the other. On failure: ROLLBACK, connection back, error thrown.
   */
  queryThenCommit<R extends object>(query: CommitQuery): Promise<R[]>
}

/** The last statement of a request (`queryThenCommit`). */
export interface CommitQuery {
  text: string
  values: unknown[]
  types?: pg.CustomTypesConfig
  /**
   * Run as the SQL prepared statement of this name (prepared once per connection: no parsing per request; planned
   * for each run's values unless `genericPlan`). The name must identify `text` (e.g. carry its hash).
   */
  prepare?: string
  /**
   * With `prepare`: one plan per connection, made at the first run and reused (`inlinedCall`), as long as the sizes
   * (bytes) of the relations the statement reads — which it reports in its rows, found by `sizes` — have not outgrown
   * those it was made for.
   */
  genericPlan?: { sizes(rows: readonly object[]): readonly number[] | undefined }
}

/** What the request does to its client row in the opening statement. */
export type ClientAccess =
  /** pull, snapshot, events: read it (404 when absent). */
  | 'read'
  /** push: mark the push on it (404 when absent). */
  | 'push'
  /** register: insert or reactivate it (403 too_many_clients when the per-user cap refuses a new one). */
  | { register: Registration }

export interface OpenOptions {
  access: ClientAccess
  /**
   * How the request's schema pair is checked (409 on mismatch): `exact` (default), `bootstrap` (register: the pair
   * (0, '') of a client that has no schema yet is accepted too), `none` (the request carries no pair).
   */
  schema?: 'exact' | 'bootstrap' | 'none'
  /** Runs after the schema check, before the client checks (register's app-version gate). */
  admit?: (contract: SchemaContract) => void
  /** The statement opening the transaction (default `BEGIN`); `null`: no transaction, the opening statement alone. */
  begin?: string | null
  /** Transaction-local settings (`set_config(name, value, true)`). */
  settings?: { [name: string]: string }
  deadline?: RequestDeadline
  /**
   * Work the engine starts on its own for a client (snapshot read-ahead), outside any request of it: a deactivated
   * client is refused (`StaleClientRejectedError`) instead of being put to the onStaleClient hook — user code runs for
   * the client's own requests only, and its next one asks the hook.
   */
  background?: boolean
  /**
   * The request already opened once and the hook accepted its deactivated client (a snapshot page that goes on in a
   * second transaction): not asked again within one request.
   */
  staleAccepted?: boolean
}

interface OpeningRow extends ClientColumns {
  fp: string
}

/**
 * Opens a user's request transaction — the one way register, pull, snapshot, push and events start — in as few round
 * trips as possible: `BEGIN`, then ONE statement that sets `app.user_id` for the transaction (RLS, §2.6) and the
 * request's settings and deadline timeouts, reads the catalog fingerprint (Decision 12, as fresh as a separate check:
 * it runs after the request arrived) and reaches the caller's client row as `access` says (clients/). Then, in the
 * order of §1.3: schema pair (409, the bootstrap pair included), `admit`, client row (404, or 403 for register's
 * cap), deactivated client → onStaleClient (403 when it rejects). Any failure rolls back (a push's touch or a
 * register's upsert included).
 *
 * When the fingerprint is not the cached contract's (DDL happened), the connection is released *before* the contract
 * is rebuilt (the rebuild needs pool connections of its own: holding one here could deadlock a small pool), then the
 * request starts over. Likewise around the onStaleClient hook (user code).
 */
export async function openRequest(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version?: number; schema_hash?: string },
  opts: OpenOptions,
): Promise<RequestTx> {
  const { text, values } = openingStatement(ctx, userId, req.client_id, opts)
  const begin = opts.begin === undefined ? 'BEGIN' : opts.begin
  const missing = (): SynchroError =>
    typeof opts.access === 'object' ? new TooManyClientsError() : new ClientNotRegisteredError()
  let known: { fp: string; contract: SchemaContract } | undefined
  let staleAccepted = opts.staleAccepted ?? false
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
        if (begin !== null) await db.query(command)
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
      fingerprint: '',
      client: undefined as unknown as ClientRow,
      commit: () => finish('COMMIT'),
      abort: () => finish('ROLLBACK'),
      async queryThenCommit<R extends object>(query: CommitQuery): Promise<R[]> {
        const inline =
          begin === null || opts.deadline?.expired
            ? undefined
            : inlinedCall(db, query.text, query.values, query.prepare, query.genericPlan !== undefined)
        let rows: R[]
        try {
          if (inline === undefined) {
            rows = (await db.query<R>({ text: query.text, values: query.values, types: query.types })).rows
          } else {
            opts.deadline?.beginCommit()
            const results = (await db.query({
              text: `${inline};\nCOMMIT`,
              types: query.types,
            })) as unknown as pg.QueryResult<R>[]
            done = true
            unwatch()
            const page = results[results.length - 2]?.rows ?? []
            await prepareAfter(db, query.prepare, query.text, query.genericPlan?.sizes(page))
            db.release()
            return page
          }
        } catch (err) {
          await finish('ROLLBACK')
          // Nothing was written: the client retries (503 + Retry-After), and from now on nothing is prepared.
          if (lostPreparedStatement(err)) throw new DeadlineExceededError()
          throw err
        }
        await finish('COMMIT')
        return rows
      },
    }
    try {
      opts.deadline?.check() // answered 503 while waiting for a connection: do nothing
      const rows = await runOpening(db, begin, text, values)
      const r = rows[0]
      if (!r) throw new Error('request: opening statement returned no row')
      // The DDL watch stopped firing (token NULL): the catalog fingerprint, read now, is the token (one more round trip).
      if (r.fp == null) r.fp = await catalogFingerprint(ctx, db)
      const contract = ctx.contracts.cachedFor(r.fp) ?? (known?.fp === r.fp ? known.contract : undefined)
      if (!contract) {
        await tx.abort()
        known = { fp: r.fp, contract: await ctx.contracts.forFingerprint(r.fp) }
        continue
      }
      checkSchema(contract, req, opts.schema ?? 'exact')
      opts.admit?.(contract)
      const client = clientRowOf(r, userId, req.client_id)
      if (!client) throw missing()
      if (!client.isActive && ctx.hooks.onStaleClient && !staleAccepted) {
        if (opts.background) throw new StaleClientRejectedError()
        // User code: never run it while holding a connection in an open transaction (a hook querying the same small
        // pool would wait forever). Rare path (deactivated clients): release, ask, start over.
        await tx.abort()
        const ok = await ctx.hooks.onStaleClient({ userId, clientId: req.client_id })
        if (!ok) throw new StaleClientRejectedError()
        staleAccepted = true
        continue
      }
      tx.contract = contract
      tx.fingerprint = r.fp
      tx.client = client
      return tx
    } catch (err) {
      await tx.abort()
      throw err
    }
  }
}

/** The catalog fingerprint of the registered tables, read on `db` (`SchemaContractCache.catalogFingerprintSql`). */
async function catalogFingerprint(ctx: EngineContext, db: pg.PoolClient): Promise<string> {
  const sql = `SELECT ${ctx.contracts.catalogFingerprintSql('$1')} AS fp`
  const { rows } = await db.query<{ fp: string }>(sql, [ctx.contracts.fingerprintParam()])
  return rows[0]?.fp ?? ''
}

/**
 * `begin` and the opening statement. When every value can travel as a quoted literal (strings without NUL, arrays
 * of them, integers, NULL), both go as ONE simple-protocol query: one round trip instead of two. Otherwise (rare: a
 * NUL byte, which PostgreSQL text cannot hold anyway) they run one by one with the values as parameters.
 */
async function runOpening(
  db: pg.PoolClient,
  begin: string | null,
  text: string,
  values: unknown[],
): Promise<OpeningRow[]> {
  if (begin !== null) {
    const inline = inlined(db, text, values)
    if (inline !== undefined) {
      const results = (await db.query(`${begin}; ${inline}`)) as unknown as pg.QueryResult<OpeningRow>[]
      return results[1]?.rows ?? []
    }
    await db.query(begin)
    return (await db.query<OpeningRow>(text, values)).rows
  }
  // No transaction (a snapshot page served from read-ahead rows): a named statement, not parsed and planned per page.
  return queryNamed<OpeningRow>(db, text, values)
}

/** 409 unless the request's pair is the contract's (or, for `bootstrap`, the empty pair). */
function checkSchema(
  contract: SchemaContract,
  req: { schema_version?: number; schema_hash?: string },
  mode: 'exact' | 'bootstrap' | 'none',
): void {
  if (mode === 'none') return
  if (mode === 'bootstrap' && req.schema_version === 0 && req.schema_hash === '') return
  if (contract.version !== req.schema_version || contract.hash !== req.schema_hash) {
    throw new SchemaMismatchError(contract.version, contract.hash)
  }
}

/** The opening statement and its parameters; equal values share one parameter. */
function openingStatement(
  ctx: EngineContext,
  userId: string,
  clientId: string,
  opts: OpenOptions,
): { text: string; values: unknown[] } {
  const values: unknown[] = []
  const placeholders = new Map<unknown, string>()
  const bind: Bind = (value) => {
    let p = placeholders.get(value)
    if (!p) {
      values.push(value)
      p = `$${values.length}`
      placeholders.set(value, p)
    }
    return p
  }
  const user = bind(userId)
  const settings = Object.entries({ ...opts.settings, ...deadlineSettings(opts.deadline) })
    .map(([name, value]) => `, set_config('${name}', ${bind(value)}, true)`)
    .join('')
  const fp = ctx.contracts.fingerprintSql(bind(ctx.contracts.fingerprintParam()))
  const source: ClientSource =
    opts.access === 'read'
      ? readClient(userId, clientId)(bind)
      : opts.access === 'push'
        ? touchClientForPush(userId, clientId)(bind)
        : upsertClient(opts.access.register)(bind)
  const text = `${source.with ? `WITH ${source.with}\n` : ''}SELECT set_config('app.user_id', ${user}, true)${settings},
       ${fp} AS fp,
       ${CLIENT_COLUMNS}
  FROM (SELECT 1) one
  ${source.join}`
  return { text, values }
}

/**
 * `openRequest`, then `fn` in the transaction: COMMIT when it returns (its value is the answer), ROLLBACK when it
 * throws.
 */
export async function inRequest<T>(
  ctx: EngineContext,
  userId: string,
  req: { client_id: string; schema_version?: number; schema_hash?: string },
  opts: OpenOptions,
  fn: (tx: RequestTx) => Promise<T>,
): Promise<T> {
  const tx = await openRequest(ctx, userId, req, opts)
  let out: T
  try {
    out = await fn(tx)
  } catch (err) {
    await tx.abort()
    throw err
  }
  await tx.commit()
  return out
}
