export {
  type BatchStatement,
  type CheckpointMode,
  type ColumnDef,
  type CreateTableOptions,
  type ExecuteResult,
  SynchroClient,
  type Transaction,
  type Unsubscribe,
} from './client.js'
export { type ResolvedConfig, resolveConfig, type SynchroClientConfig } from './config.js'
export {
  type DriverFactory,
  Mutex,
  type Row,
  type RunResult,
  type SqliteDriver,
  type SqliteExecutor,
  type SqlParam,
  type SqlValue,
} from './driver.js'
export {
  AlreadyStartedError,
  ClosedError,
  ConfigError,
  DatabaseError,
  InvalidArgumentError,
  InvalidResponseError,
  isRetryable,
  NetworkError,
  NotConnectedError,
  NotStartedError,
  PushRejectedError,
  type RejectedPush,
  SchemaMismatchError,
  SchemaNotLoadedError,
  ServerError,
  SnapshotRequiredError,
  SynchroError,
  type SynchroErrorCode,
  TableNotSyncedError,
  TransactionTimeoutError,
  UpgradeRequiredError,
  WriteRejectedError,
} from './errors.js'
export type {
  ConflictEvent,
  SnapshotApprover,
  StatusEvent,
  SyncProgress,
  SyncStatus,
} from './sync/engine.js'
export type {
  Rejection,
  RejectionResolution,
  RejectionStatus,
  WriteOperation,
} from './sync/rejections.js'
export { backoffDelayMs, type Timers } from './sync/retry.js'
export type { SpanLike, TracerLike } from './sync/tracing.js'
export type { FetchLike } from './sync/transport.js'
export { compareTimestamps } from './timestamps.js'
