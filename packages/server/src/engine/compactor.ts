import { type CompactionProgress, type CompactionResult, runCompaction } from '../changelog/compaction.js'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import { ConfigurationError } from '../errors.js'
import { compactionResult } from '../telemetry/attributes.js'
import { withSpan } from '../telemetry/tracing.js'
import { safeErrorFacts } from '../util/log.js'

/** Compaction runs of one engine: on demand, and every `compaction.intervalMs` once started. */
export class Compactor {
  #timer: NodeJS.Timeout | undefined

  constructor(
    private readonly ctx: EngineContext,
    private readonly configured: boolean,
  ) {}

  /** One run; error when the engine was created without compaction options. */
  async run(onProgress?: (p: CompactionProgress) => void): Promise<CompactionResult> {
    if (!this.configured) throw new ConfigurationError('compaction is not configured')
    const result = await withSpan('synchro.compaction', {}, () => runCompaction(this.ctx, onProgress), compactionResult)
    emitHook(this.ctx, 'onCompaction', () => result)
    return result
  }

  /** Background runs when `compaction.intervalMs` is set (idempotent). */
  start(): void {
    const every = this.ctx.compaction.intervalMs
    if (!every || this.#timer) return
    this.#timer = setInterval(() => {
      this.run().catch((err: unknown) =>
        this.ctx.logger.error({ err: safeErrorFacts(err) }, 'background compaction failed'),
      )
    }, every)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
  }
}
