import type pg from 'pg'
import { BackfillWatch, mergeChunk } from '../buckets/backfill.js'
import { EdgeState } from '../buckets/edges.js'
import type { BucketResolver } from '../buckets/resolver.js'
import type { Logger } from '../util/log.js'
import { WalApplyError } from '../wal/errors.js'
import { maxLsn as biggerLsn } from '../wal/lsn.js'
import { beginBatch, commitBatch, writeBatch } from './batch-sql.js'
import type { WalTransaction } from './changes.js'
import { computeBatch } from './compute.js'
import { BatchOutput } from './output.js'
import { applySpilled, type SpillTarget, skippedBatch } from './spilled.js'

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
  /** Backfill chunks waiting for their place in the stream learn here which records each batch touched. */
  readonly backfill = new BackfillWatch()

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
    const lsn = rows[0] ? BigInt(rows[0].lsn) : 0n
    this.backfill.read(lsn)
    return lsn
  }

  /**
   * Computes a batch ahead of time on top of `base` (the batch being written: call this from its `onReady`).
   * Read-only towards the sync tables; returns undefined when the batch must be computed under the lock instead
   * (a TRUNCATE, whose "every edge of the table" cannot be layered on an uncommitted batch; a backfill chunk, whose
   * progress is checked under the lock; or any error).
   */
  async prepare(txns: readonly WalTransaction[], base: PreparedBatch): Promise<PreparedBatch | undefined> {
    if (txns.some((t) => t.backfill || t.changes.some((c) => c.kind === 'truncate'))) return undefined
    let client: pg.PoolClient | undefined
    try {
      client = await this.pool.connect()
      // A transaction only for the bucket functions' savepoints; nothing is written to the sync tables here.
      await client.query('BEGIN')
      const state = new EdgeState(base.state)
      const out = new BatchOutput()
      await computeBatch(client, this.resolver, txns, state, out)
      this.backfill.touched(state)
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
      if (spilled?.spill) return applySpilled(this.#spillTarget(), spilled, spilled.spill, copyEdges)
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
      const stored = await beginBatch(client, this.slotName)
      this.backfill.locked(stored)
      const maxLsn = txns.reduce((m, t) => biggerLsn(m, t.endLsn), stored)
      const p = options.prepared
      const pipelined = p !== undefined && usable(p, txns, this.#committed, stored)
      let batch: PreparedBatch
      if (pipelined) batch = p
      else {
        const todo = txns.filter((t) => t.endLsn > stored || t.backfill)
        if (todo.length === 0) {
          await client.query('ROLLBACK')
          return skippedBatch(stored, txns.length, t0)
        }
        batch = await computeLocked(client, this.resolver, this.backfill, todo)
      }
      options.onReady?.(batch)
      const tw = performance.now()
      await writeBatch(client, batch.out, batch.state, copyEdges)
      const tc = performance.now()
      await commitBatch(client, this.slotName, maxLsn, batch.out.clRows > 0 ? batch.out.buckets : undefined)
      this.#committed = { batch, lsn: maxLsn }
      this.backfill.committed(maxLsn)
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

  #spillTarget(): SpillTarget {
    return {
      pool: this.pool,
      resolver: this.resolver,
      slotName: this.slotName,
      spillPart: this.spillPart,
      begun: (stored) => {
        this.#committed = undefined
        this.backfill.locked(stored)
      },
      computed: (state) => this.backfill.touched(state),
      committed: (lsn) => this.backfill.committed(lsn),
    }
  }
}

/**
 * Whether a batch prepared ahead can be written as it is: it was built on the batch this applier committed last, at
 * the LSN stored now (nobody wrote in between), and none of its transactions is already applied.
 */
function usable(
  p: PreparedBatch,
  txns: readonly WalTransaction[],
  committed: { batch: PreparedBatch; lsn: bigint } | undefined,
  stored: bigint,
): boolean {
  return (
    p.txns === txns &&
    p.base !== undefined &&
    committed?.batch === p.base &&
    committed.lsn === stored &&
    txns.every((t) => t.endLsn > stored)
  )
}

/** Computes a batch under the position lock, from the database's edges; applies the backfill chunks it carries. */
async function computeLocked(
  client: pg.ClientBase,
  resolver: BucketResolver,
  watch: BackfillWatch,
  todo: readonly WalTransaction[],
): Promise<PreparedBatch> {
  const state = new EdgeState()
  const out = new BatchOutput()
  await computeBatch(client, resolver, todo, state, out)
  watch.touched(state)
  for (const t of todo) if (t.backfill) t.backfill.added = await mergeChunk(client, state, t.backfill)
  return new PreparedBatch(todo, out, state, undefined)
}
