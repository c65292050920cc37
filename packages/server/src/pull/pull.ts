import type { PullRequest, PullResponse } from '@synchro/protocol'
import type { EngineContext } from '../engine/context.js'

/** POST /sync/pull — built in the pull issue. */
export async function pull(_ctx: EngineContext, _userId: string, _req: PullRequest): Promise<PullResponse> {
  throw new Error('pull: not implemented yet')
}
