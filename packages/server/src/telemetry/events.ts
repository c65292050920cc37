/**
 * Structured operator events: one log line each, with an `event` field naming it and stable field names (listed in
 * docs/deployment.md). Log pipelines can alert on them without parsing messages.
 */

/** The part of a pino-compatible logger an event needs. */
interface EventLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
}

/** The `event` field of each operator event. */
export const OPERATOR_EVENTS = {
  captureBehind: 'synchro.capture.behind',
  captureCaughtUp: 'synchro.capture.caught_up',
  clientRebuild: 'synchro.client.rebuild',
  compactionProgress: 'synchro.compaction.progress',
  compactionDone: 'synchro.compaction.done',
} as const

/** A client told to drop its local data and take a snapshot again (not a new client's first snapshot). */
export function clientRebuild(
  logger: EventLogger,
  fields: { userId: string; clientId: string; checkpoint: number; reason: string | undefined },
): void {
  if (fields.reason === undefined || fields.reason === 'initial_sync_required') return
  logger.warn({ event: OPERATOR_EVENTS.clientRebuild, ...fields }, 'client must rebuild from a snapshot')
}

/** One committed deletion batch of a compaction run; `deletedEntries` counts the whole run so far. */
export function compactionProgress(
  logger: EventLogger,
  fields: { safeSeq: number; batch: number; batchDeleted: number; deletedEntries: number },
): void {
  logger.info({ event: OPERATOR_EVENTS.compactionProgress, ...fields }, 'compaction progress')
}

/** The end of a compaction run. */
export function compactionDone(
  logger: EventLogger,
  fields: { deactivatedClients: number; safeSeq: number; deletedEntries: number; batches: number; durationMs: number },
): void {
  logger.info({ event: OPERATOR_EVENTS.compactionDone, ...fields }, 'compaction run finished')
}

/** PostgreSQL timestamps count microseconds from 2000-01-01 UTC. */
const PG_EPOCH_MS = 946_684_800_000

/**
 * Watches how far change capture runs behind the source database: after each applied batch, the time since its
 * newest transaction committed (by the database's clock). Over `thresholdMs` it logs `synchro.capture.behind`
 * (again at most every `repeatMs` while it stays behind); back under, one `synchro.capture.caught_up`.
 */
export class CaptureLag {
  #behindSince: number | undefined
  #lastWarning = Number.NEGATIVE_INFINITY

  constructor(
    readonly logger: EventLogger,
    readonly thresholdMs: number,
    readonly repeatMs = 10_000,
  ) {}

  observe(txns: readonly { commitTime?: bigint }[], lsn: string, lagBytes: number | null, now = Date.now()): void {
    // The newest source transaction (a backfill chunk in the batch has no commit time).
    const commitTime = txns.findLast((t) => t.commitTime !== undefined)?.commitTime
    if (!(this.thresholdMs > 0) || commitTime === undefined) return
    const lagMs = Math.max(0, Math.round(now - (PG_EPOCH_MS + Number(commitTime / 1000n))))
    if (lagMs > this.thresholdMs) {
      this.#behindSince ??= now
      if (now - this.#lastWarning < this.repeatMs) return
      this.#lastWarning = now
      const fields = { lagMs, thresholdMs: this.thresholdMs, behindForMs: now - this.#behindSince, lagBytes, lsn }
      this.logger.warn({ event: OPERATOR_EVENTS.captureBehind, ...fields }, 'change capture is behind')
    } else if (this.#behindSince !== undefined) {
      const fields = { lagMs, thresholdMs: this.thresholdMs, behindForMs: now - this.#behindSince, lsn }
      this.#behindSince = undefined
      this.#lastWarning = Number.NEGATIVE_INFINITY
      this.logger.info({ event: OPERATOR_EVENTS.captureCaughtUp, ...fields }, 'change capture caught up')
    }
  }
}
