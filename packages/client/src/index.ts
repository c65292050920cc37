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
export type { SynchroClientConfig } from './config.js'
export type {
  DriverFactory,
  Row,
  RunResult,
  SqliteDriver,
  SqliteExecutor,
  SqlParam,
  SqlValue,
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
export type { SpanLike, TracerLike } from './sync/tracing.js'
export type { FetchLike } from './sync/transport.js'
export { compareTimestamps } from './timestamps.js'
