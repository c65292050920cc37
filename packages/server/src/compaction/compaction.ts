import type { EngineContext } from '../engine/context.js'
import type { CompactionResult } from '../engine/types.js'

/** One compaction run — built in the pull issue. */
export async function runCompaction(_ctx: EngineContext): Promise<CompactionResult> {
  throw new Error('compaction: not implemented yet')
}
