import type { PushRecord, PushRequest, PushResult } from '@synchro/protocol'
import type pg from 'pg'
import { touchClientForPush } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { DeadlineExceededError, deadlineSettings, type RequestDeadline, watchProgress } from '../limits/deadline.js'
import type { CommitQuery } from '../request/open.js'
import { lostPreparedStatement } from '../request/statements.js'
import type { SchemaContract } from '../schema/contract.js'
import { EXACT_JSON_TYPES } from '../util/json.js'
import { memo } from '../util/memo.js'
import { preparedName } from '../util/sql.js'
import { executeCall, quoteLiteral } from './roundtrip.js'
import type { LockRow } from './rows.js'
import { PushRun, type StampRead } from './run.js'
import { type Statement, stampStatement } from './sql.js'

/**
 * A push whose opening rides in the round trip of its first reads (request/gated.ts does the same for a pull page):
 *
 *   BEGIN; SELECT set_config('app.user_id', …), <timeouts>; EXECUTE gate(…); [EXECUTE stamps(…) per table]
 *
 * then the writes, the last one with COMMIT (commit.ts). The gate statement marks the push on the client row and
 * reports whether the catalog fingerprint is still the one the contract was built for and the client row is there
 * and active. `openRequest` spends a round trip of its own on that (and plans its statement every time: the
 * fingerprint's plan alone is ≈ 0.3 ms of PostgreSQL time); here it is a prepared statement, and the optimistic
 * pre-load's stamp reads (push/run.ts), which only depend on the request, run behind it in the same round trip: a push
 * of updates costs two round trips instead of three.
 *
 * Taken only when the last opened push found the cached contract current and the request carries its schema pair, no
 * onPushAccepted hook runs after the writes, and the values travel as literals. When the gate is closed (DDL, missing or
 * deactivated client) or the opening fails, the transaction rolls back and push takes the `openRequest` path, which
 * answers exactly as always (409, 404, the stale-client hook, a contract rebuild). Answers `undefined` then.
 */
export async function pushInOneTrip(
  ctx: EngineContext,
  userId: string,
  req: PushRequest,
  changes: readonly PushRecord[],
  deadline: RequestDeadline | undefined,
): Promise<{ contract: SchemaContract; results: PushResult[] } | undefined> {
  const known = lastOpened.get(ctx)
  if (!gating || !known || ctx.hooks.onPushAccepted || ctx.contracts.cachedFor(known.fingerprint) !== known.contract)
    return
  const { contract } = known
  if (contract.version !== req.schema_version || contract.hash !== req.schema_hash) return
  if (userId.includes('\u0000') || req.client_id.includes('\u0000')) return
  const db = await ctx.pool.connect()
  const unwatch = watchProgress(db, deadline)
  let ended = false
  /** `discard`: the connection's prepared statements are in doubt; it is not reused. */
  const end = async (command: 'COMMIT' | 'ROLLBACK', discard = false): Promise<void> => {
    if (ended) return
    ended = true
    const expired = command === 'COMMIT' && deadline?.expired === true
    if (command === 'COMMIT' && !expired) deadline?.beginCommit()
    let failed: { err: unknown } | undefined
    try {
      await db.query(expired ? 'ROLLBACK' : command)
    } catch (err) {
      failed = { err }
      if (command === 'COMMIT') await db.query('ROLLBACK').catch(() => {})
    }
    unwatch()
    db.release(failed || discard ? true : undefined)
    if (expired) throw new DeadlineExceededError()
    if (failed && command === 'COMMIT') throw failed.err
  }
  const commit = async <R extends object>(query: CommitQuery): Promise<R[]> => {
    if (deadline?.expired) throw new DeadlineExceededError()
    deadline?.beginCommit()
    const results = (await db.query({
      text: `${query.text};\nCOMMIT`,
      types: query.types,
    })) as unknown as pg.QueryResult<R>[]
    ended = true
    unwatch()
    db.release()
    return results[results.length - 2]?.rows ?? []
  }
  try {
    deadline?.check() // answered 503 while waiting for a connection: do nothing
    const run = new PushRun(ctx, db, contract, userId, commit)
    const reads = run.stampReads(changes)
    const stamps = await open(ctx, db, userId, req.client_id, known.fingerprint, reads, deadline)
    if (!(stamps instanceof Map)) {
      await end('ROLLBACK', stamps === 'failed')
      deadline?.check() // answered 503 meanwhile (a stalled or timed-out opening): no second attempt
      return
    }
    const results = await run.run(changes, stamps)
    await end('COMMIT')
    return { contract, results }
  } catch (err) {
    await end('ROLLBACK', true).catch(() => {})
    throw err
  }
}

/** False once a prepared statement went missing (see `open`). */
let gating = true

/** Per engine, the contract the last opened push found current and its catalog fingerprint. */
const lastOpened = new WeakMap<EngineContext, { fingerprint: string; contract: SchemaContract }>()

/** After an `openRequest` push: the contract it found current (the next pushes may go through the gate). */
export function rememberOpened(ctx: EngineContext, fingerprint: string, contract: SchemaContract): void {
  lastOpened.set(ctx, { fingerprint, contract })
}

/**
 * The opening round trip: the stamp rows by table name when the gate was open. `failed`: a database error (the
 * connection's prepared statements are then in doubt); the `openRequest` path meets the same error, or not, as it
 * always would.
 */
async function open(
  ctx: EngineContext,
  db: pg.PoolClient,
  userId: string,
  clientId: string,
  fingerprint: string,
  reads: readonly StampRead[],
  deadline: RequestDeadline | undefined,
): Promise<Map<string, LockRow[]> | 'closed' | 'failed'> {
  const settings = Object.entries(deadlineSettings(deadline))
    .map(([name, value]) => `, set_config('${name}', ${quoteLiteral(value)}, true)`)
    .join('')
  const parts = [
    'BEGIN',
    `SELECT set_config('app.user_id', ${quoteLiteral(userId)}, true)${settings}`,
    executeCall(db, gateStatement(ctx), [userId, clientId, ctx.contracts.fingerprintParam(), fingerprint]),
    ...reads.map((r) => executeCall(db, stampStatement(ctx.registry, r.info.t, r.info.idKind), [r.keys])),
  ]
  let results: pg.QueryResult[]
  try {
    results = (await db.query({ text: parts.join(';\n'), types: EXACT_JSON_TYPES })) as unknown as pg.QueryResult[]
  } catch (err) {
    // A prepared statement gone missing: a transaction-mode pooler sits in between (request/open.ts), where a
    // statement prepared in one transaction may be missing in the next. No more gates in this process.
    if (lostPreparedStatement(err)) gating = false
    return 'failed'
  }
  // One result per statement; an EXECUTE's is the last of its part (a part may begin with PREPARE).
  const ends: number[] = []
  for (const p of parts) ends.push((ends.at(-1) ?? -1) + (p.startsWith('PREPARE') ? 2 : 1))
  const rowsOf = (part: number) => results[ends[part] as number]?.rows ?? []
  if (rowsOf(2)[0]?.ok !== true) return 'closed'
  return new Map(reads.map((r, i) => [r.info.t.tableName, rowsOf(i + 3) as LockRow[]]))
}

const gates = new WeakMap<EngineContext, Statement>()

/**
 * Marks the push on the caller's client row ($1 user, $2 client: clients/touchClientForPush) and answers `ok`: the
 * catalog fingerprint of the tables $3 is $4 and the client row exists and is active.
 */
function gateStatement(ctx: EngineContext): Statement {
  return memo(gates, ctx, () => {
    const params = ['$1', '$2']
    const source = touchClientForPush('', '')(() => params.shift() as string)
    const text = `WITH ${source.with}
SELECT ${ctx.contracts.fingerprintSql('$3')} = $4 AND c.is_active IS TRUE AS ok
  FROM (SELECT 1) one
  ${source.join}`
    return { name: preparedName('synchro_push_gate', text), text }
  })
}
