/** What the steps of a sync cycle share: the engine's parts and the session's schema. */
import type { ResolvedConfig } from '../../config.js'
import { InvalidResponseError } from '../../errors.js'
import type { ClientSchema } from '../../schema/synced-table.js'
import type { LocalDatabase } from '../../store/database.js'
import type { LivePosition } from '../frames.js'
import type { PushOutcome } from '../push.js'
import type { ConflictEvent, SnapshotApprover, StatusEvent } from '../status.js'
import type { Transport } from '../transport.js'

/**
 * Rows applied per write transaction when pages arrive back to back (has_more). Bigger groups mean fewer commits
 * (each rewrites every B-tree page it touched into the WAL); smaller ones mean fresher UI and less re-download when
 * the network fails mid-catch-up.
 */
export const APPLY_GROUP_ROWS = 10_000

export interface CycleContext {
  readonly cfg: ResolvedConfig
  readonly db: LocalDatabase
  readonly transport: Transport
  /** The server's schema, loaded by `connect` (null before the first connect). */
  schema: ClientSchema | null
  /** Schema loaded, local tables migrated and client registered: cleared to make the next cycle connect again. */
  connected: boolean
  setStatus(e: StatusEvent): void
  emitConflict(c: ConflictEvent): void
  /** Called after each push batch was applied locally (rejections, confirmations). */
  readonly pushObservers: ReadonlySet<(o: PushOutcome) => void>
  readonly snapshotApprovers: ReadonlySet<SnapshotApprover>
  /** Our position against the live stream's data frames (frames.ts), when the engine listens. */
  readonly position?: LivePosition
}

export function requireSchema(ctx: CycleContext): ClientSchema {
  if (!ctx.schema) throw new InvalidResponseError('schema not loaded')
  return ctx.schema
}

/** The schema pair every request after register carries. */
export function schemaPair(ctx: CycleContext): { schema_version: number; schema_hash: string } {
  const s = requireSchema(ctx)
  return { schema_version: s.version, schema_hash: s.hash }
}
