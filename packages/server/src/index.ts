export { AuthError, type Authenticator, headerAuth, type JwtAuthOptions, jwtAuth } from './auth/auth.js'
export { BucketResolver, type BucketResult, type BucketRule, ColumnCatalog, GLOBAL_BUCKET } from './buckets/index.js'
export {
  type ChangelogStats,
  type ChangelogStatsOptions,
  type CompactionProgress,
  type CompactionResult,
  changelogInstalled,
  changelogStats,
} from './changelog/index.js'
export { type ClientCounts, clientStats } from './clients/clients.js'
export { lastWriteWins, serverWins } from './conflict/lww.js'
export type { ConflictDecision, ConflictInput, ConflictResolver } from './conflict/types.js'
export type { EngineHooks } from './core/hooks.js'
export type { CompactionOptions, Logger } from './core/types.js'
export { createEngine, Engine } from './engine/engine.js'
export type { EngineOptions } from './engine/types.js'
export {
  BadRequestError,
  ClientNotRegisteredError,
  ConfigurationError,
  isTransientError,
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
export { toNodeListener } from './http/node.js'
export { DeadlineExceededError, RequestDeadline, type RequestOptions } from './limits/deadline.js'
export { MAX_FREE_TEXT_LENGTH, MAX_IDENTIFIER_LENGTH } from './limits/limits.js'
export {
  type EnsureIndexesResult,
  ensureTableIndexes,
  type TableIndex,
  tableIndexes,
} from './migrations/indexes.js'
export { INFRASTRUCTURE_SQL, type MigrationProgress, runMigrations } from './migrations/migrations.js'
export {
  Registry,
  RegistryError,
  type RegistryErrorCode,
  type ResolvedTable,
  type TableConfig,
} from './registry/registry.js'
export { accessPredicate, applyRlsPolicies, type RlsOptions, rlsStatements } from './rls/rls.js'
export { goJson, schemaHash } from './schema/contract.js'
export { defaultKind, logicalTypeOf, normaliseDefault, sqliteDefault } from './schema/types.js'
export { safeErrorFacts } from './util/log.js'
export { guardPool } from './util/pool.js'
export {
  bigintToLsn,
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  leaderLockKey,
  lsnToBigint,
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
