import type { PushResult, SnapshotReason } from '@synchro/protocol'
import type pg from 'pg'
import type { CompactionResult } from '../changelog/compaction.js'
import type { ConflictDecision, ConflictInput } from '../conflict/types.js'
import { safeErrorFacts } from '../util/log.js'
import type { Logger } from './types.js'

/**
 * Engine hooks; all optional. Two are decisions and take part in the request (`onPushAccepted`, `onStaleClient`);
 * every other hook is informational and runs through `emitHook`: one that throws (or rejects) is logged and never
 * changes a response.
 */
export interface EngineHooks {
  /** Inside the push transaction, after all records; throwing rolls back everything (HTTP 500). */
  onPushAccepted?(event: {
    userId: string
    clientId: string
    accepted: PushResult[]
    db: pg.PoolClient
  }): Promise<void> | void
  /** Informational: every update/resurrection that reached conflict resolution. */
  onConflict?(event: { input: ConflictInput; decision: ConflictDecision }): void
  /** After every answered push (metrics); `results` in request order. */
  onPushComplete?(event: { userId: string; clientId: string; results: PushResult[] }): void
  /** After every answered snapshot page (metrics). */
  onSnapshotPage?(event: { userId: string; clientId: string; records: number; final: boolean }): void
  /** After a pull page was answered. */
  onPullComplete?(event: {
    userId: string
    clientId: string
    checkpoint: number
    changes: number
    deletes: number
  }): void
  /** A pull answered snapshot_required. */
  onSnapshotRequired?(event: { userId: string; clientId: string; reason: SnapshotReason }): void
  /** Called for a deactivated (stale) client on pull/push/snapshot/events; return false to reject it (HTTP 403). */
  onStaleClient?(event: { userId: string; clientId: string }): boolean | Promise<boolean>
  /** After each compaction run. */
  onCompaction?(result: CompactionResult): void
  /** Register from an app version below the minimum. */
  onSchemaIncompatible?(event: { userId: string; clientId: string; appVersion: string }): void
}

/** The hooks whose outcome the engine ignores (everything but the two decisions). */
export type InformationalHook = Exclude<keyof EngineHooks, 'onPushAccepted' | 'onStaleClient'>

type EventOf<K extends InformationalHook> = Parameters<NonNullable<EngineHooks[K]>>[0]

/**
 * The one way the engine calls an informational hook. `event` is only built when the hook is set. A hook that
 * throws, or returns a promise that rejects, is logged (error facts only, never the event) and otherwise ignored:
 * the request it reports on is answered exactly as without it.
 */
export function emitHook<K extends InformationalHook>(
  ctx: { hooks: EngineHooks; logger: Logger },
  name: K,
  event: () => EventOf<K>,
): void {
  const hook = ctx.hooks[name] as ((e: EventOf<K>) => unknown) | undefined
  if (!hook) return
  const failed = (err: unknown) => ctx.logger.warn({ err: safeErrorFacts(err, false), hook: name }, 'hook failed')
  try {
    const out = hook.call(ctx.hooks, event())
    if (out && typeof (out as PromiseLike<unknown>).then === 'function') {
      Promise.resolve(out).catch(failed)
    }
  } catch (err) {
    failed(err)
  }
}
