import type { WalTransaction } from '../changelog/changes.js'
import type { ApplyResult, BatchApplier, PreparedBatch } from '../changelog/writer.js'
import { tracedApply } from '../telemetry/tracing.js'
import type { BatchQueue } from './queue.js'

/** What one written batch reports: its transactions, the writer's result and how long it waited / took. */
export interface AppliedBatch {
  txns: WalTransaction[]
  result: ApplyResult
  waitedMs: number
  ms: number
}

/**
 * Hands queued batches to the changelog writer, one at a time, in order. Pipelining: once the batch being written
 * holds the position lock and its edge state is final (`onReady`), the next batch is computed on another connection
 * while the first one writes and commits. It is started as soon as a batch is pending (or, failing that, computed
 * under the lock after the commit, as without pipelining). The first error stops the pipeline (`onFailure`).
 */
export class ApplyPipeline {
  #applying: Promise<void> | null = null
  #writing: PreparedBatch | null = null
  #ahead: { batch: WalTransaction[]; prepared: Promise<PreparedBatch | undefined> } | null = null
  #failed = false

  constructor(
    readonly applier: BatchApplier,
    readonly queue: BatchQueue,
    readonly pipelining: boolean,
    readonly onApplied: (b: AppliedBatch) => void,
    readonly onFailure: (err: Error) => void,
  ) {}

  /** Nothing queued, being written or prepared. */
  get idle(): boolean {
    return this.queue.length === 0 && this.#applying === null && this.#ahead === null
  }

  /** Stops taking batches (the session is ending); the batch being written finishes. */
  stop(): void {
    this.#failed = true
  }

  /** Resolves once the batch being written (if any) has committed or rolled back. */
  async settled(): Promise<void> {
    if (this.#applying) await this.#applying
  }

  /** New transactions were queued: start writing if idle, and prepare the next batch if one is being written. */
  kick(): void {
    this.#prepareAhead()
    if (this.#applying || this.#failed) return
    this.#applying = this.#drain()
      .catch((err: unknown) => {
        this.#failed = true
        this.onFailure(err instanceof Error ? err : new Error(String(err)))
      })
      .finally(() => {
        this.#applying = null
        if (this.queue.length > 0 && !this.#failed) this.kick()
      })
  }

  #prepareAhead(): void {
    if (!this.pipelining || !this.#writing || this.#ahead || this.#failed || this.queue.length === 0) return
    if (this.queue.nextIsSpilled) return
    const batch = this.queue.take()
    if (batch) this.#ahead = { batch, prepared: this.applier.prepare(batch, this.#writing) }
  }

  async #drain(): Promise<void> {
    try {
      while (!this.#failed) {
        let batch: WalTransaction[] | null
        let prepared: PreparedBatch | undefined
        const w0 = performance.now()
        if (this.#ahead) {
          batch = this.#ahead.batch
          prepared = await this.#ahead.prepared
          this.#ahead = null
        } else batch = this.queue.take()
        const waitedMs = Math.round(performance.now() - w0)
        if (!batch || this.#failed) break
        const started = performance.now()
        let result: ApplyResult
        try {
          result = await tracedApply(this.applier, batch, {
            prepared,
            onReady: (b) => {
              this.#writing = b
              this.#prepareAhead()
            },
          })
        } finally {
          for (const t of batch) t.spill?.dispose()
        }
        this.#writing = null
        this.onApplied({ txns: batch, result, waitedMs, ms: Math.round(performance.now() - started) })
      }
    } finally {
      this.#writing = null
      // A batch computed ahead holds no locks and writes nothing; let it finish so its connection is released.
      // Its transactions are received again after the session restarts (nothing past the durable LSN is acked).
      if (this.#ahead) await this.#ahead.prepared
      this.#ahead = null
    }
  }
}
