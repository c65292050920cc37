/**
 * The public API of @synchro/server: what an application needs to serve sync. The Node adapter lives in
 * `@synchro/server/node`; helpers for synchrod, benchmarks and tests in `@synchro/server/internal` (no stability
 * promise).
 */
export {
  AuthError,
  type Authenticator,
  headerAuth,
  type JwtAuthOptions,
  jwtAuth,
  KeySetUnavailableError,
} from './auth/auth.js'
export { GLOBAL_BUCKET } from './buckets/index.js'
export type { CompactionProgress, CompactionResult } from './changelog/index.js'
export { lastWriteWins, serverWins } from './conflict/lww.js'
export type { ConflictDecision, ConflictInput, ConflictResolver } from './conflict/types.js'
export type { EngineHooks } from './core/hooks.js'
export type { CompactionOptions, Logger } from './core/types.js'
export { createEngine, Engine } from './engine/engine.js'
export type { EngineOptions, LiveFrames } from './engine/types.js'
export {
  BadRequestError,
  ClientNotRegisteredError,
  ConfigurationError,
  SchemaContractError,
  SchemaMismatchError,
  StaleClientRejectedError,
  SynchroError,
  TooManyClientsError,
  UpgradeRequiredError,
} from './errors.js'
export {
  CLIENT_CLOSED_REQUEST,
  createSyncHandler,
  type RateLimitRejection,
  type SyncHandlerOptions,
} from './http/handler.js'
export { DeadlineExceededError, RequestDeadline, type RequestOptions } from './limits/deadline.js'
export {
  type EnsureIndexesResult,
  ensureTableIndexes,
  type TableIndex,
  tableIndexes,
} from './migrations/indexes.js'
export { type MigrationProgress, type MigrationResult, runMigrations } from './migrations/migrations.js'
export {
  Registry,
  RegistryError,
  type RegistryErrorCode,
  type ResolvedTable,
  type TableConfig,
} from './registry/registry.js'
export { applyRlsPolicies, type RlsOptions, rlsStatements } from './rls/rls.js'
export type { DdlWatchInstall } from './schema/ddl-watch.js'
export {
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  startWalConsumer,
  WalApplyError,
  WalConfigurationError,
  WalConnectionError,
  type WalConsumer,
  type WalConsumerOptions,
  type WalConsumerStatus,
  WalDecodeError,
  WalError,
  WalLeadershipLostError,
  WalSlotBusyError,
  WalSlotMissingError,
  WalSlotRecreatedError,
} from './wal/index.js'
