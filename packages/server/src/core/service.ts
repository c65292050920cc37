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
  /** Live notifications for one registered client (404 / 403 like pull); returns the unsubscribe function. */
  subscribeChanges(
    userId: string,
    clientId: string,
    onChange: (seq: number) => void,
    since?: number,
    onEnd?: () => void,
  ): Promise<() => void>
}
