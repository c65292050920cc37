import type { SnapshotRequest, SnapshotResponse } from '@synchro/protocol'
import type { EngineContext } from '../engine/context.js'

/** POST /sync/snapshot — built in the pull issue. */
export async function snapshot(_ctx: EngineContext, _userId: string, _req: SnapshotRequest): Promise<SnapshotResponse> {
  throw new Error('snapshot: not implemented yet')
}
