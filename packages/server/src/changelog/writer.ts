import type pg from 'pg'
import { type EdgeEntry, EdgeState } from '../buckets/edges.js'
import type { BucketResolver } from '../buckets/resolver.js'
import type { Logger } from '../util/log.js'
import { WalApplyError } from '../wal/errors.js'
import { maxLsn as biggerLsn } from '../wal/lsn.js'
import type { SpilledChanges, WalTransaction } from './changes.js'
import { computeBatch, computeChanges, waitUntilVisible } from './compute.js'
import { copyFrom, copyText } from './copy.js'
import { CHANGELOG_CHANNEL, notifyBuckets } from './listener.js'
import { BatchOutput } from './output.js'

export interface ApplyResult {
  /** Highest end LSN covered (what was stored in sync_wal_position). */
  lsn: bigint
  changelogRows: number
  ruleFailures: number
  /** Transactions skipped because sync_wal_position already covered them (replay after a crash before the ack). */
  skippedTransactions: number
  /** True when the batch was written as prepared ahead of time (pipelined), false when computed under the lock. */
  pipelined: boolean
  /** Milliseconds per phase: `prep` (computed under the lock; 0 when pipelined), `write`, `commit`. */
  timings: { prep: number; write: number; commit: number }
}

export interface ApplyOptions {
  /** The batch as computed ahead of time by {@link BatchApplier.prepare}; used only if still valid under the lock. */
  prepared?: PreparedBatch
  /**
   * Called once the position lock is held and the batch's edge state is final (before its rows are written): from
   * then on the next batch may be prepared on top of it ({@link BatchApplier.prepare}).
   */
  onReady?: (batch: PreparedBatch) => void
}

/**
 * A batch whose buckets, changelog rows and edge changes are computed, ready to be written. When prepared ahead of
 * time it sits on top of `base`, the batch being written meanwhile: its edge state starts from base's final state.
 */
export class PreparedBatch {
  /** @internal */
  constructor(
    readonly txns: readonly WalTransaction[],
    /** @internal */ readonly out: BatchOutput,
    /** @internal */ readonly state: EdgeState,
    /** @internal */ readonly base: PreparedBatch | undefined,
  ) {}
}

/**
 * Turns committed source transactions into changelog rows and bucket edges, exactly once: everything, including the
 * new confirmed LSN, is written in ONE PostgreSQL transaction, and transactions at or below the stored LSN (read
 * under a row lock) are skipped. Per batch the number of statements is fixed, independent of the number of rows.
 *
 * Pipelining: while batch N is being written, batch N+1 may be computed ({@link prepare}) on another connection,
 * on top of N's final edge state (records N touches take their edges from N, all others from the database, which N
 * does not change for them). Batch N+1's transaction uses that work only if, under the position lock, the stored
 * LSN is exactly the one N committed and N was written from the very state N+1 was built on; otherwise (another
 * applier wrote in between, N was recomputed, N failed) it recomputes everything under the lock, as without
 * pipelining.
 */
export class BatchApplier {
  /** The last batch this applier committed and the LSN it stored. */
  #committed: { batch: PreparedBatch; lsn: bigint } | undefined
  /** Changes per part when a spilled transaction is read back: bounds the memory one part needs. */
  spillPart = 10_000

  constructor(
    readonly pool: pg.Pool,
    readonly resolver: BucketResolver,
    readonly slotName: string,
    readonly logger?: Logger,
  ) {}

  /** The stored confirmed LSN for the slot (0 when none). */
  async storedLsn(): Promise<bigint> {
    const { rows } = await this.pool.query<{ lsn: string }>(
      'SELECT confirmed_lsn::text AS lsn FROM sync_wal_position WHERE slot_name = $1',
      [this.slotName],
    )
    return rows[0] ? BigInt(rows[0].lsn) : 0n
  }

  /**
   * Computes a batch ahead of time on top of `base` (the batch being written: call this from its `onReady`).
   * Read-only towards the sync tables; returns undefined when the batch must be computed under the lock instead
   * (a TRUNCATE, whose "every edge of the table" cannot be layered on an uncommitted batch; or any error).
   */
  async prepare(txns: readonly WalTransaction[], base: PreparedBatch): Promise<PreparedBatch | undefined> {
    if (txns.some((t) => t.changes.some((c) => c.kind === 'truncate'))) return undefined
    let client: pg.PoolClient | undefined
    try {
      client = await this.pool.connect()
      // A transaction only for the bucket functions' savepoints; nothing is written to the sync tables here.
      await client.query('BEGIN')
      const state = new EdgeState(base.state)
      const out = new BatchOutput()
      await computeBatch(client, this.resolver, txns, state, out)
      await client.query('COMMIT')
      state.dropBase()
      client.release()
      return new PreparedBatch(txns, out, state, base)
    } catch (err) {
      this.logger?.debug({ err }, 'wal: preparing a batch ahead failed; it will be computed under the lock')
      if (client) {
        await client.query('ROLLBACK').catch(() => {})
        client.release(true)
      }
      return undefined
    }
  }

  async apply(txns: readonly WalTransaction[], options: ApplyOptions = {}): Promise<ApplyResult> {
    const attempt = (copyEdges: boolean) => {
      const spilled = txns.length === 1 ? txns[0] : undefined
      if (spilled?.spill) return this.#attemptSpilled(spilled, spilled.spill, copyEdges)
      return this.#attempt(txns, copyEdges ? options : {}, copyEdges)
    }
    try {
      return await attempt(true)
    } catch (err) {
      // Edges are COPYed because the batch's edge state says they do not exist yet. Should something else have
      // created one meanwhile, redo the batch from the database under the lock, inserting edges with ON CONFLICT.
      if ((err as { code?: string }).code === '23505') {
        this.logger?.warn({ err }, 'wal: bucket edge already present; recomputing the batch under the lock')
        try {
          return await attempt(false)
        } catch (err2) {
          throw new WalApplyError(`writing a WAL batch failed: ${(err2 as Error).message}`, { cause: err2 })
        }
      }
      throw new WalApplyError(`writing a WAL batch failed: ${(err as Error).message}`, { cause: err })
    }
  }

  async #attempt(txns: readonly WalTransaction[], options: ApplyOptions, copyEdges: boolean): Promise<ApplyResult> {
    const client = await this.pool.connect()
    let released = false
    const t0 = performance.now()
    try {
      const stored = await this.#begin(client)
      const maxLsn = txns.reduce((m, t) => biggerLsn(m, t.endLsn), stored)
      const p = options.prepared
      const committed = this.#committed
      let batch: PreparedBatch
      let pipelined = false
      if (
        p &&
        p.txns === txns &&
        p.base !== undefined &&
        committed?.batch === p.base &&
        committed.lsn === stored &&
        txns.every((t) => t.endLsn > stored)
      ) {
        batch = p
        pipelined = true
      } else {
        const todo = txns.filter((t) => t.endLsn > stored)
        if (todo.length === 0) {
          await client.query('ROLLBACK')
          return {
            lsn: stored,
            changelogRows: 0,
            ruleFailures: 0,
            skippedTransactions: txns.length,
            pipelined: false,
            timings: { prep: Math.round(performance.now() - t0), write: 0, commit: 0 },
          }
        }
        const state = new EdgeState()
        const out = new BatchOutput()
        await computeBatch(client, this.resolver, todo, state, out)
        batch = new PreparedBatch(todo, out, state, undefined)
      }
      options.onReady?.(batch)
      const tw = performance.now()
      await this.#write(client, batch.out, batch.state, maxLsn, copyEdges)
      if (batch.out.clRows > 0) await notify(client, batch.out.buckets)
      const tc = performance.now()
      await client.query('COMMIT')
      this.#committed = { batch, lsn: maxLsn }
      return {
        lsn: maxLsn,
        changelogRows: batch.out.clRows,
        ruleFailures: batch.out.fOp.length,
        skippedTransactions: txns.length - batch.txns.length,
        pipelined,
        timings: {
          prep: Math.round(tw - t0),
          write: Math.round(tc - tw),
          commit: Math.round(performance.now() - tc),
        },
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      // A broken connection must not go back to the pool.
      client.release(true)
      released = true
      throw err
    } finally {
      if (!released) client.release()
    }
  }

  /** Opens the batch's transaction and locks the position row; returns the stored LSN. */
  async #begin(client: pg.ClientBase): Promise<bigint> {
    await client.query('BEGIN')
    // Locks the position row: concurrent appliers for the same slot (a stale leader) serialise here, and the
    // value read is the one this transaction will overwrite, so "skip what is stored" is race-free.
    const { rows } = await client.query<{ lsn: string }>(
      `INSERT INTO sync_wal_position (slot_name, confirmed_lsn) VALUES ($1, 0)
       ON CONFLICT (slot_name) DO UPDATE SET slot_name = EXCLUDED.slot_name
       RETURNING confirmed_lsn::text AS lsn`,
      [this.slotName],
    )
    return BigInt(rows[0]?.lsn ?? '0')
  }

  /**
   * One transaction too big for memory (spilled to disk): read and computed in parts of `spillPart` changes, each
   * written before the next is read, all inside ONE database transaction with the new position — visible at
   * commit as a whole, or (crash, error) not at all. Each part's edge state is loaded fresh, inside the transaction,
   * so it sees the parts before it. Never pipelined.
   */
  async #attemptSpilled(txn: WalTransaction, spill: SpilledChanges, copyEdges: boolean): Promise<ApplyResult> {
    const client = await this.pool.connect()
    const t0 = performance.now()
    let ok = false
    try {
      const stored = await this.#begin(client)
      this.#committed = undefined
      const timings = { prep: 0, write: 0, commit: 0 }
      if (txn.endLsn <= stored) {
        await client.query('ROLLBACK')
        ok = true
        timings.prep = Math.round(performance.now() - t0)
        return { lsn: stored, changelogRows: 0, ruleFailures: 0, skippedTransactions: 1, pipelined: false, timings }
      }
      await waitUntilVisible(client, [txn])
      const buckets = new BucketSet()
      let changelogRows = 0
      let ruleFailures = 0
      for (const part of spill.parts(this.spillPart)) {
        const tp = performance.now()
        const state = new EdgeState()
        const out = new BatchOutput()
        await computeChanges(client, this.resolver, part, state, out)
        const tw = performance.now()
        await this.#write(client, out, state, stored, copyEdges)
        timings.prep += tw - tp
        timings.write += performance.now() - tw
        changelogRows += out.clRows
        ruleFailures += out.fOp.length
        buckets.addAll(out.buckets)
      }
      const tc = performance.now()
      await this.#write(client, new BatchOutput(), new EdgeState(), txn.endLsn, copyEdges)
      if (changelogRows > 0) await notify(client, buckets.values())
      await client.query('COMMIT')
      ok = true
      timings.commit = performance.now() - tc
      for (const k of ['prep', 'write', 'commit'] as const) timings[k] = Math.round(timings[k])
      return { lsn: txn.endLsn, changelogRows, ruleFailures, skippedTransactions: 0, pipelined: false, timings }
    } finally {
      if (!ok) await client.query('ROLLBACK').catch(() => {})
      // A broken connection must not go back to the pool.
      client.release(!ok)
    }
  }

  /**
   * Writes the batch: changelog rows by COPY (in WAL order, so `seq` follows it), new edges by COPY (they do not
   * exist: the edge state says so, and only the position-lock holder writes edges), then one statement for removed
   * edges, rule failures and the new confirmed LSN. With `copyEdges` false, edges are inserted ON CONFLICT instead.
   */
  async #write(db: pg.ClientBase, out: BatchOutput, state: EdgeState, lsn: bigint, copyEdges: boolean): Promise<void> {
    const del: [string[], string[], string[]] = [[], [], []]
    const ins: [string[], string[], string[]] = [[], [], []]
    let edgeCopy = ''
    for (const e of state.entries()) {
      if (e.initial === e.cur) continue
      for (const b of e.initial) if (!e.cur.has(b)) pushEdge(del, e, b)
      for (const b of e.cur) {
        if (e.initial.has(b)) continue
        if (copyEdges) edgeCopy += `${copyText(e.table)}\t${copyText(e.id)}\t${copyText(b)}\n`
        else pushEdge(ins, e, b)
      }
    }
    if (out.clRows > 0) {
      await copyFrom(
        db,
        'COPY sync_changelog (bucket_id, table_name, record_id, operation) FROM STDIN',
        Buffer.from(out.cl),
      )
    }
    if (edgeCopy.length > 0) {
      await copyFrom(db, 'COPY sync_bucket_edges (table_name, record_id, bucket_id) FROM STDIN', Buffer.from(edgeCopy))
    }
    // Deleted and inserted edge keys are disjoint (per record, a bucket is either removed or added), so the
    // data-modifying CTEs, which share one snapshot, never touch the same row twice. PostgreSQL runs every
    // data-modifying CTE even when the main statement does not reference it.
    await db.query(
      `WITH ed AS (
         DELETE FROM sync_bucket_edges e USING unnest($1::text[], $2::text[], $3::text[]) AS x(t, r, b)
          WHERE e.table_name = x.t AND e.record_id = x.r AND e.bucket_id = x.b
         RETURNING 1
       ), ei AS (
         INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id)
         SELECT * FROM unnest($4::text[], $5::text[], $6::text[])
         ON CONFLICT (table_name, record_id, bucket_id) DO UPDATE SET updated_at = now()
         RETURNING 1
       ), rf AS (
         INSERT INTO sync_rule_failures (table_name, record_id, operation, error_text, payload)
         SELECT * FROM unnest($7::text[], $8::text[], $9::int2[], $10::text[], $11::jsonb[])
         RETURNING 1
       )
       INSERT INTO sync_wal_position (slot_name, confirmed_lsn, updated_at)
       VALUES ($12, $13::bigint, now())
       ON CONFLICT (slot_name) DO UPDATE
         SET confirmed_lsn = GREATEST(sync_wal_position.confirmed_lsn, EXCLUDED.confirmed_lsn), updated_at = now()`,
      [...del, ...ins, out.fTable, out.fRecord, out.fOp, out.fError, out.fPayload, this.slotName, lsn.toString()],
    )
  }
}

/**
 * Delivered to every LISTENing instance when (and only if) the transaction commits. The head is the last seq this
 * session drew: only the position-lock holder writes the changelog, so it is the new head. A listener that stops
 * reading lets the notification queue fill; past half full we skip the NOTIFY (instances then find the batch by
 * their fallback poll) rather than ever fail the capture on a full queue.
 */
async function notify(db: pg.ClientBase, buckets: Iterable<string> | null): Promise<void> {
  await db.query(
    `SELECT CASE WHEN pg_notification_queue_usage() < 0.5 THEN pg_notify('${CHANGELOG_CHANNEL}',
       '{"seq":' || currval(pg_get_serial_sequence('sync_changelog', 'seq')) || ',"b":' || $1 || '}') END`,
    [buckets === null ? 'null' : notifyBuckets(buckets)],
  )
}

/** The buckets a big transaction touches, for its NOTIFY: past a bound, "any bucket" (null). */
class BucketSet {
  #set: Set<string> | null = new Set()
  addAll(bs: Iterable<string>): void {
    if (!this.#set) return
    for (const b of bs) this.#set.add(b)
    if (this.#set.size > 1_000) this.#set = null
  }
  values(): Iterable<string> | null {
    return this.#set
  }
}

function pushEdge(cols: [string[], string[], string[]], e: EdgeEntry, b: string): void {
  cols[0].push(e.table)
  cols[1].push(e.id)
  cols[2].push(b)
}
