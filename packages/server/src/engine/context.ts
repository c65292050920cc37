import type pg from 'pg'
import type { ConflictResolver } from '../conflict/types.js'
import { ClientNotRegisteredError, SchemaMismatchError, StaleClientRejectedError } from '../errors.js'
import { deadlineSettings, type RequestDeadline, watchProgress } from '../limits/deadline.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { SchemaContract, SchemaContractCache } from '../schema/contract.js'
import type { Logger } from '../util/log.js'
import type { CompactionOptions, EngineHooks } from './types.js'

/** What the endpoint implementations (register, pull, push, snapshot, compaction) share. */
export interface EngineContext {
  pool: pg.Pool
  registry: Registry
  tables: readonly ResolvedTable[]
  contracts: SchemaContractCache
  conflictResolver: ConflictResolver
  hooks: EngineHooks
  logger: Logger
  minClientVersion: string | undefined
  compaction: Required<Omit<CompactionOptions, 'intervalMs'>> & { intervalMs: number | undefined }
  limits: { maxJsonDepth: number; maxClientsPerUser: number }
}

/** Returns the current contract when the request's pair matches it; SchemaMismatchError otherwise. */
export async function checkSchemaPair(ctx: EngineContext, version: number, hash: string): Promise<SchemaContract> {
  const contract = await ctx.contracts.get()
  if (contract.version !== version || contract.hash !== hash) {
    throw new SchemaMismatchError(contract.version, contract.hash)
  }
  return contract
}

/** A row of sync_clients as the engine needs it. */
export interface ClientRow {
  id: string
  userId: string
  clientId: string
  bucketSubs: string[]
  lastPullSeq: number | null
  isActive: boolean
}

/**
 * Loads the caller's client row, 404 when it never registered. A deactivated client passes unless the
 * onStaleClient hook rejects it.
 */
export async function requireClient(
  ctx: EngineContext,
  db: pg.Pool | pg.PoolClient,
  userId: string,
  clientId: string,
  opts: { forUpdate?: boolean } = {},
): Promise<ClientRow> {
  const { rows } = await db.query<{
    id: string
    bucket_subs: string[]
    last_pull_seq: string | null
    is_active: boolean
  }>(
    `SELECT id::text, bucket_subs, last_pull_seq::text, is_active
       FROM sync_clients WHERE user_id = $1 AND client_id = $2${opts.forUpdate ? ' FOR UPDATE' : ''}`,
    [userId, clientId],
  )
  const r = rows[0]
  if (!r) throw new ClientNotRegisteredError()
  if (!r.is_active && ctx.hooks.onStaleClient) {
    const ok = await ctx.hooks.onStaleClient({ userId, clientId })
    if (!ok) throw new StaleClientRejectedError()
  }
  return {
    id: r.id,
    userId,
    clientId,
    bucketSubs: r.bucket_subs.length > 0 ? r.bucket_subs : defaultSubscriptions(userId),
    lastPullSeq: r.last_pull_seq === null ? null : Number(r.last_pull_seq),
    isActive: r.is_active,
  }
}

/** Default bucket subscriptions of a user (§2.1). */
export function defaultSubscriptions(userId: string): string[] {
  return [`user:${userId}`, 'global']
}

/**
 * A statement `withUserTransaction` runs right after setting `app.user_id`, in the same round trip: the three go
 * as one simple-protocol query, `$1`, `$2`, … in `text` replaced by the values as quoted literals (so `text` must
 * not contain `$n` otherwise). When a value is not a string or contains NUL (which cannot travel inline), the
 * statements run one by one with the values as parameters instead — same effect, two more round trips.
 */
export interface FirstStatement {
  text: string
  values: readonly unknown[]
}

/**
 * Runs `fn` in one transaction with `app.user_id` set for the generated RLS policies (§2.6).
 * Rolls back on any error. With `opts.first`, that statement's result is passed to `fn`.
 */
export async function withUserTransaction<T>(
  ctx: EngineContext,
  userId: string,
  fn: (db: pg.PoolClient, first: pg.QueryResult | undefined) => Promise<T>,
  opts: {
    readOnly?: boolean
    isolation?: 'read committed' | 'repeatable read'
    first?: FirstStatement
    deadline?: RequestDeadline
  } = {},
): Promise<T> {
  const db = await ctx.pool.connect()
  const unwatch = watchProgress(db, opts.deadline)
  let broken = false
  // No statement or lock wait outlasts the request's deadline period (transaction-local settings).
  const timeouts = Object.entries(deadlineSettings(opts.deadline))
    .map(([name, ms]) => `, set_config('${name}', '${Number(ms)}', true)`)
    .join('')
  try {
    opts.deadline?.check() // answered 503 while waiting for a connection: do nothing
    const mode = [
      opts.isolation ? `ISOLATION LEVEL ${opts.isolation.toUpperCase()}` : '',
      opts.readOnly ? 'READ ONLY' : '',
    ]
      .filter(Boolean)
      .join(' ')
    let first: pg.QueryResult | undefined
    const f = opts.first
    const inline = (v: unknown): v is string => typeof v === 'string' && !v.includes('\u0000')
    if (f && inline(userId) && f.values.every(inline)) {
      const text = f.text.replace(/\$(\d+)/g, (m, i: string) => {
        const v = f.values[Number(i) - 1]
        if (typeof v !== 'string') throw new Error(`withUserTransaction: no value for ${m}`)
        return db.escapeLiteral(v)
      })
      const sql = `BEGIN ${mode}; SELECT set_config('app.user_id', ${db.escapeLiteral(userId)}, true)${timeouts}; ${text}`
      const results = (await db.query(sql)) as unknown as pg.QueryResult[]
      first = results[2]
    } else {
      await db.query(`BEGIN ${mode}`)
      await db.query(`SELECT set_config('app.user_id', $1, true)${timeouts}`, [userId])
      if (f) first = await db.query(f.text, [...f.values])
    }
    const out = await fn(db, first)
    opts.deadline?.beginCommit()
    await db.query('COMMIT')
    return out
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {
      broken = true
    })
    throw err
  } finally {
    unwatch()
    db.release(broken ? true : undefined)
  }
}
