import type {
  PullRequest,
  PullResponse,
  PushRequest,
  PushResponse,
  RegisterRequest,
  RegisterResponse,
  SchemaResponse,
  SnapshotRequest,
  SnapshotResponse,
  TablesResponse,
} from '@synchro/protocol'
import type { PokeFn } from '../changelog/notifier.js'
import type { RequestOptions } from '../limits/deadline.js'
import type { Logger } from './types.js'

/**
 * The sync endpoints as the HTTP layer calls them. The engine (the composition root) implements it; http/ depends on
 * this interface, not on the engine.
 */
export interface SyncService {
  readonly ctx: { readonly logger: Logger }
  /** Minimum client version, when configured. */
  readonly minClientVersion: string | undefined
  register(userId: string, req: RegisterRequest, opts?: RequestOptions): Promise<RegisterResponse>
  pull(userId: string, req: PullRequest, opts?: RequestOptions): Promise<PullResponse>
  push(userId: string, req: PushRequest, opts?: RequestOptions): Promise<PushResponse>
  snapshot(userId: string, req: SnapshotRequest, opts?: RequestOptions): Promise<SnapshotResponse>
  tablesMeta(): Promise<TablesResponse>
  schema(): Promise<SchemaResponse>
  /**
   * Live notifications for one registered client (404 / 403 like pull); returns the unsubscribe function. `onChange`
   * gets the new head and, when its buckets were read exactly, the range (live data frames).
   */
  subscribeChanges(
    userId: string,
    clientId: string,
    onChange: PokeFn,
    since?: number,
    onEnd?: () => void,
  ): Promise<() => void>
  /** The shared body of a live data frame, or undefined when the range does not fit one (live/frames.ts). */
  liveFrame(userId: string, buckets: readonly string[], prev: number, to: number): Promise<Uint8Array | undefined>
}
