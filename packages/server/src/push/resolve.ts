import type { ConflictDecision, ConflictInput } from '../conflict/types.js'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import { isThenable, type Resolve } from './decide.js'
import { sqlState } from './errors.js'

/**
 * The engine's conflict resolver as push decides with it: undefined when a custom resolver throws or rejects (that
 * record → internal_error, retryable); without a promise when the resolver answered synchronously. The onConflict
 * hook sees every decision.
 */
export function resolverOf(ctx: EngineContext): Resolve {
  return (input) => {
    const failed = (err: unknown) => {
      ctx.logger.warn({ table: input.table, code: sqlState(err) }, 'conflict resolver failed')
      return undefined
    }
    let decision: ConflictDecision | PromiseLike<ConflictDecision>
    try {
      decision = ctx.conflictResolver.resolve(input)
    } catch (err) {
      return failed(err)
    }
    if (isThenable(decision)) return Promise.resolve(decision).then((d) => hooked(ctx, input, d), failed)
    return hooked(ctx, input, decision)
  }
}

function hooked(ctx: EngineContext, input: ConflictInput, decision: ConflictDecision): ConflictDecision {
  try {
    emitHook(ctx, 'onConflict', () => ({ input, decision }))
  } catch (err) {
    // Informational hook: its failure must not change the outcome.
    ctx.logger.warn({ table: input.table, code: sqlState(err) }, 'onConflict hook failed')
  }
  return decision
}
