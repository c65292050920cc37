/**
 * `@synchro/server/internal`: building blocks that synchrod, the benchmarks and the tests share with the server.
 * Not part of the public API: names here may change in any release.
 */
export { BucketResolver, type BucketResult, type BucketRule, ColumnCatalog } from './buckets/index.js'
export {
  type ChangelogStats,
  type ChangelogStatsOptions,
  changelogInstalled,
  changelogStats,
} from './changelog/index.js'
export { type ClientCounts, clientStats } from './clients/clients.js'
export { isTransientError } from './errors.js'
export { MAX_FREE_TEXT_LENGTH, MAX_IDENTIFIER_LENGTH } from './limits/limits.js'
export { INFRASTRUCTURE_SQL } from './migrations/migrations.js'
export { accessPredicate } from './rls/rls.js'
export { goJson, schemaHash } from './schema/contract.js'
export { ddlWatchSql, warnNoDdlWatch } from './schema/ddl-watch.js'
export { defaultKind, logicalTypeOf, normaliseDefault, sqliteDefault } from './schema/types.js'
export { snapshotRecordCount } from './snapshot/records.js'
export { safeErrorFacts } from './util/log.js'
export { guardPool } from './util/pool.js'
export { bigintToLsn, leaderLockKey, lsnToBigint } from './wal/index.js'
