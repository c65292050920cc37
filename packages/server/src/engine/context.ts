import type pg from 'pg'
import type { ConflictResolver } from '../conflict/types.js'
import { ClientNotRegisteredError, SchemaMismatchError, StaleClientRejectedError } from '../errors.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { SchemaContract, SchemaContractCache } from '../schema/contract.js'
import type { CompactionOptions, EngineHooks, Logger } from './types.js'

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
 * Runs `fn` in one transaction with `app.user_id` set for the generated RLS policies (§2.6).
 * Rolls back on any error.
 */
export async function withUserTransaction<T>(
  ctx: EngineContext,
  userId: string,
  fn: (db: pg.PoolClient) => Promise<T>,
  opts: { readOnly?: boolean; isolation?: 'read committed' | 'repeatable read' } = {},
): Promise<T> {
  const db = await ctx.pool.connect()
  let broken = false
  try {
    const mode = [
      opts.isolation ? `ISOLATION LEVEL ${opts.isolation.toUpperCase()}` : '',
      opts.readOnly ? 'READ ONLY' : '',
    ]
      .filter(Boolean)
      .join(' ')
    await db.query(`BEGIN ${mode}`)
    await db.query(`SELECT set_config('app.user_id', $1, true)`, [userId])
    const out = await fn(db)
    await db.query('COMMIT')
    return out
  } catch (err) {
    await db.query('ROLLBACK').catch(() => {
      broken = true
    })
    throw err
  } finally {
    db.release(broken ? true : undefined)
  }
}
