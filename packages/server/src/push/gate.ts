import type { PushRecord, PushRequest, PushResult } from '@synchro/protocol'
import type pg from 'pg'
import { touchClientForPush } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { deadlineSettings, type RequestDeadline } from '../limits/deadline.js'
import { lostPreparedStatement } from '../request/statements.js'
import type { SchemaContract } from '../schema/contract.js'
import { EXACT_JSON_TYPES } from '../util/json.js'
import { memo } from '../util/memo.js'
import { preparedName } from '../util/sql.js'
import { CommitMiss } from './commit.js'
import { GatedTx } from './gated-tx.js'
import { executeCall, quoteLiteral } from './roundtrip.js'
import type { LockRow } from './rows.js'
import { PushRun, type StampRead } from './run.js'
import { type Statement, stampStatement } from './sql.js'

/**
 * A push whose opening rides in the round trip of its first statement (request/gated.ts does the same for a pull page):
 *
 *   BEGIN; SELECT set_config('app.user_id', …), <timeouts>; EXECUTE gate(…); <first statement>
 *
 * The first statement is the optimistic pre-load's stamp reads (push/run.ts: updates, deletes), or for a push of
 * creates its write: one round trip for a push of creates without a deadline. Under a request deadline a push of
 * creates sends the opening alone as soon as it starts (GatedTx.sendOpeningEarly), then its write with COMMIT: two
 * round trips, the opening's database time spent while the records are decided here. The gate statement marks the
 * push on the client row and raises unless the catalog fingerprint is still the one the contract was built for and
 * the client row is there and active. `openRequest` spends a round trip of its own
 * on that (and plans its statement every time: the fingerprint's plan alone is ≈ 0.3 ms of PostgreSQL time); here it
 * is a prepared statement.
 *
 * Taken only when the last opened push found the cached contract current and the request carries its schema pair, no
 * onPushAccepted hook runs after the writes, and the values travel as literals (`undefined` otherwise). When the gate
 * is closed (DDL, missing or deactivated client) or that first round trip fails, the transaction rolls back and
 * CommitMiss sends push to the `openRequest` path, which answers exactly as always (409, 404, the stale-client hook, a
 * contract rebuild).
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
  const tx = new GatedTx(db, deadline, openingOf(ctx, db, userId, req.client_id, known.fingerprint, deadline))
  let early: Promise<void> | undefined
  try {
    deadline?.check() // answered 503 while waiting for a connection: do nothing
    const run = new PushRun(ctx, tx.db, contract, userId, tx.commit)
    // The stamp reads go with the opening; without them (creates) the first write does (opening.ts), or under a
    // deadline the opening goes at once on its own (GatedTx.sendOpeningEarly).
    const reads = run.stampReads(changes)
    early = reads.length === 0 ? tx.sendOpeningEarly() : undefined
    const stamps = await readStamps(ctx, tx.db, reads)
    const results = await run.run(changes, stamps)
    await tx.end('COMMIT')
    return { contract, results }
  } catch (thrown) {
    // Statements queued behind an opening sent early fail when it did: its CommitMiss is the push's error then.
    const err =
      (early &&
        (await early.then(
          () => undefined,
          (e: unknown) => e,
        ))) ||
      thrown
    // A prepared statement gone missing: a transaction-mode pooler sits in between (request/open.ts), where a
    // statement prepared in one transaction may be missing in the next. No more gates in this process.
    if (err instanceof CommitMiss && lostPreparedStatement(err.cause)) gating = false
    await tx.abandon(err)
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
 * The opening of the request transaction: BEGIN, the settings, the gate (which raises when closed), as one text for
 * DeferredOpening, and the number of results it gives.
 */
function openingOf(
  ctx: EngineContext,
  db: pg.PoolClient,
  userId: string,
  clientId: string,
  fingerprint: string,
  deadline: RequestDeadline | undefined,
): [string, number] {
  const settings = Object.entries(deadlineSettings(deadline))
    .map(([name, value]) => `, set_config('${name}', ${quoteLiteral(value)}, true)`)
    .join('')
  const gate = executeCall(db, gateStatement(ctx), [userId, clientId, ctx.contracts.fingerprintParam(), fingerprint])
  const text = `BEGIN;\nSELECT set_config('app.user_id', ${quoteLiteral(userId)}, true)${settings};\n${gate}`
  return [text, gate.startsWith('PREPARE') ? 4 : 3]
}

/** The optimistic pre-load's stamp reads in one round trip (the opening's, when they are the first): rows by table. */
async function readStamps(
  ctx: EngineContext,
  db: pg.PoolClient,
  reads: readonly StampRead[],
): Promise<Map<string, LockRow[]> | undefined> {
  if (reads.length === 0) return
  const parts = reads.map((r) => executeCall(db, stampStatement(ctx.registry, r.info.t, r.info.idKind), [r.keys]))
  const answer = (await db.query({ text: parts.join(';\n'), types: EXACT_JSON_TYPES })) as unknown
  const results = (Array.isArray(answer) ? answer : [answer]) as pg.QueryResult[]
  // One result per statement; an EXECUTE's is the last of its part (a part may begin with PREPARE).
  const ends: number[] = []
  for (const p of parts) ends.push((ends.at(-1) ?? -1) + (p.startsWith('PREPARE') ? 2 : 1))
  return new Map(reads.map((r, i) => [r.info.t.tableName, (results[ends[i] as number]?.rows ?? []) as LockRow[]]))
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
SELECT CASE WHEN ${ctx.contracts.fingerprintSql('$3')} = $4 AND c.is_active IS TRUE THEN true
       ELSE ('synchro push gate closed: ' || coalesce(c.is_active::text, 'no client'))::boolean END AS ok
  FROM (SELECT 1) one
  ${source.join}`
    return { name: preparedName('synchro_push_gate', text), text }
  })
}
