import type pg from 'pg'
import { deactivateStaleClients, slowestCheckpoint } from '../clients/clients.js'
import type { Logger } from '../core/types.js'
import { compactionDone, compactionProgress } from '../telemetry/events.js'

export interface CompactionResult {
  deactivatedClients: number
  safeSeq: number
  deletedEntries: number
}

/** Progress of a compaction run, after each deleted batch. */
export interface CompactionProgress {
  deletedEntries: number
  /** Entries at or below the safe seq when the run started (what the run will delete, give or take). */
  totalEntries: number
}

/** What a compaction run needs (the engine's context has it). */
export interface CompactionDeps {
  pool: pg.Pool
  logger: Logger
  compaction: { staleThresholdMs: number; batchSize: number }
}

const COUNT_SQL = `SELECT count(*)::text AS n FROM sync_changelog WHERE seq <= $1`

/**
 * One batch: delete the oldest entries up to the safe seq and, in the same statement (so in the same transaction),
 * raise the retention boundary to the highest seq removed (an upsert: a missing state row must never let entries
 * disappear unrecorded). A pull reading in REPEATABLE READ therefore sees either
 * both the deletion and the new boundary or neither (Decision 1).
 */
const DELETE_BATCH_SQL = `
WITH d AS (
  DELETE FROM sync_changelog
   WHERE seq IN (SELECT seq FROM sync_changelog WHERE seq <= $1 ORDER BY seq LIMIT $2)
  RETURNING seq
)
INSERT INTO sync_compaction_state AS s (id, max_compacted_seq)
SELECT true, coalesce(max(seq), 0) FROM d
ON CONFLICT (id) DO UPDATE
   SET max_compacted_seq = GREATEST(s.max_compacted_seq, EXCLUDED.max_compacted_seq),
       updated_at = CASE WHEN EXCLUDED.max_compacted_seq > s.max_compacted_seq THEN now() ELSE s.updated_at END
RETURNING (SELECT count(*) FROM d)::int AS deleted`

/**
 * One compaction run (§3 I): deactivate stale clients → safe seq = min checkpoint of the active clients → delete
 * `seq <= safe` in batches of `batchSize` until a short batch, recording the highest deleted seq in
 * `sync_compaction_state.max_compacted_seq`. A client whose checkpoint equals the safe seq lost nothing and keeps
 * pulling normally; only checkpoints below the recorded boundary need a snapshot.
 */
export async function runCompaction(
  ctx: CompactionDeps,
  onProgress?: (p: CompactionProgress) => void,
): Promise<CompactionResult> {
  const { staleThresholdMs, batchSize } = ctx.compaction
  const started = performance.now()
  // Stale clients (no pull progress within the threshold) stop pinning the changelog (clients/).
  const deactivatedClients = await deactivateStaleClients(ctx.pool, staleThresholdMs)
  const safeSeq = await slowestCheckpoint(ctx.pool, staleThresholdMs)
  let deletedEntries = 0
  let batches = 0
  if (safeSeq > 0) {
    const size = Math.max(1, Math.floor(batchSize))
    let totalEntries = 0
    if (onProgress) {
      const count = await ctx.pool.query<{ n: string }>(COUNT_SQL, [safeSeq])
      totalEntries = Number(count.rows[0]?.n ?? 0)
      onProgress({ deletedEntries, totalEntries })
    }
    for (;;) {
      // Each batch commits on its own: short transactions keep vacuum and concurrent pulls unblocked.
      const res = await ctx.pool.query<{ deleted: number }>(DELETE_BATCH_SQL, [safeSeq, size])
      const n = res.rows[0]?.deleted ?? 0
      deletedEntries += n
      onProgress?.({ deletedEntries, totalEntries: Math.max(totalEntries, deletedEntries) })
      batches++
      compactionProgress(ctx.logger, { safeSeq, batch: batches, batchDeleted: n, deletedEntries })
      if (n < size) break
    }
  }
  const durationMs = Math.round(performance.now() - started)
  compactionDone(ctx.logger, { deactivatedClients, safeSeq, deletedEntries, batches, durationMs })
  return { deactivatedClients, safeSeq, deletedEntries }
}
