/**
 * The changelog (`sync_changelog`, `sync_compaction_state`): the only folder whose SQL names those tables, apart
 * from the migrations that create them. The capture leader writes it; pull, snapshot and the live-event notifier
 * read it; compaction trims it; `changelogStats` reports on it.
 */

export type {
  Change,
  RowChange,
  SpilledChanges,
  TruncateChange,
  WalTransaction,
} from './changes.js'
export { type CompactionDeps, type CompactionProgress, type CompactionResult, runCompaction } from './compaction.js'
export { CHANGELOG_CHANNEL, type ChangelogPoke, notifyBuckets, parsePoke } from './listener.js'
export { ChangelogNotifier, type NotifierOptions } from './notifier.js'
export {
  bucketEntries,
  bucketsBetween,
  HISTORY_CTE,
  type History,
  headSeq,
  historyGap,
  historyServes,
  type Queryable,
  snapshotHeadSeq,
  VISIBLE_HEAD_SQL,
} from './reader.js'
export { type ChangelogStats, type ChangelogStatsOptions, changelogInstalled, changelogStats } from './stats.js'
export { type ApplyOptions, type ApplyResult, BatchApplier, PreparedBatch } from './writer.js'
