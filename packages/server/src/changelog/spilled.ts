import type pg from 'pg'
import { EdgeState } from '../buckets/edges.js'
import type { BucketResolver } from '../buckets/resolver.js'
import { BucketSet, beginBatch, commitBatch, writeBatch } from './batch-sql.js'
import type { SpilledChanges, WalTransaction } from './changes.js'
import { computeChanges, waitUntilVisible } from './compute.js'
import { BatchOutput } from './output.js'
import type { ApplyResult } from './writer.js'

/** What applying a spilled transaction needs of its BatchApplier. */
export interface SpillTarget {
  readonly pool: pg.Pool
  readonly resolver: BucketResolver
  readonly slotName: string
  /** Changes per part when the spilled transaction is read back. */
  readonly spillPart: number
  /** The position lock is held (the stored LSN read under it): a pipelined batch prepared before can no longer be used. */
  begun(stored: bigint): void
  /** A part's changes are computed (its edge state is final). */
  computed(state: EdgeState): void
  /** The transaction committed with the position at `lsn`. */
  committed(lsn: bigint): void
}

/** The result for a batch whose transactions the stored position already covers (nothing written). */
export function skippedBatch(stored: bigint, count: number, t0: number): ApplyResult {
  return {
    lsn: stored,
    changelogRows: 0,
    ruleFailures: 0,
    skippedTransactions: count,
    pipelined: false,
    timings: { prep: Math.round(performance.now() - t0), write: 0, commit: 0 },
  }
}

/**
 * One transaction too big for memory (spilled to disk): read and computed in parts of `spillPart` changes, each
 * written before the next is read, all inside ONE database transaction with the new position — visible at
 * commit as a whole, or (crash, error) not at all. Each part's edge state is loaded fresh, inside the transaction,
 * so it sees the parts before it. Never pipelined.
 */
export async function applySpilled(
  target: SpillTarget,
  txn: WalTransaction,
  spill: SpilledChanges,
  copyEdges: boolean,
): Promise<ApplyResult> {
  const client = await target.pool.connect()
  const t0 = performance.now()
  let ok = false
  try {
    const stored = await beginBatch(client, target.slotName)
    target.begun(stored)
    if (txn.endLsn <= stored) {
      await client.query('ROLLBACK')
      ok = true
      return skippedBatch(stored, 1, t0)
    }
    await waitUntilVisible(client, [txn])
    const timings = { prep: 0, write: 0, commit: 0 }
    const buckets = new BucketSet()
    let changelogRows = 0
    let ruleFailures = 0
    for (const part of spill.parts(target.spillPart)) {
      const tp = performance.now()
      const state = new EdgeState()
      const out = new BatchOutput()
      await computeChanges(client, target.resolver, part, state, out)
      target.computed(state)
      const tw = performance.now()
      await writeBatch(client, out, state, copyEdges)
      timings.prep += tw - tp
      timings.write += performance.now() - tw
      changelogRows += out.clRows
      ruleFailures += out.fOp.length
      buckets.addAll(out.buckets)
    }
    const tc = performance.now()
    await commitBatch(client, target.slotName, txn.endLsn, changelogRows > 0 ? buckets.values() : undefined)
    ok = true
    target.committed(txn.endLsn)
    timings.commit = performance.now() - tc
    for (const k of ['prep', 'write', 'commit'] as const) timings[k] = Math.round(timings[k])
    return { lsn: txn.endLsn, changelogRows, ruleFailures, skippedTransactions: 0, pipelined: false, timings }
  } finally {
    if (!ok) await client.query('ROLLBACK').catch(() => {})
    // A broken connection must not go back to the pool.
    client.release(!ok)
  }
}
