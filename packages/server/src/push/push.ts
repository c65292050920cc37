import type { PushRequest, PushResponse } from '@synchro/protocol'
import type { EngineContext } from '../engine/context.js'

/** POST /sync/push — built in the push issue. */
export async function push(_ctx: EngineContext, _userId: string, _req: PushRequest): Promise<PushResponse> {
  throw new Error('push: not implemented yet')
}
