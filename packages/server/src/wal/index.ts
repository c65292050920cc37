export type {
  Change,
  RowChange,
  TruncateChange,
  WalTransaction,
} from '../changelog/changes.js'
export { type ApplyOptions, type ApplyResult, BatchApplier, PreparedBatch } from '../changelog/writer.js'
export {
  leaderLockKey,
  startWalConsumer,
  type WalConsumer,
  type WalConsumerOptions,
  type WalConsumerStatus,
} from './consumer.js'
export {
  WalApplyError,
  WalConfigurationError,
  WalConnectionError,
  WalDecodeError,
  WalError,
  WalLeadershipLostError,
  WalSlotBusyError,
  WalSlotMissingError,
  WalSlotRecreatedError,
} from './errors.js'
export { bigintToLsn, type LsnText, lsnToBigint } from './lsn.js'
export { decodePgoutput, type PgoutputMessage, type RelationMessage, type TupleValue, UNCHANGED } from './pgoutput.js'
export {
  assertLogicalWal,
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  type SlotInfo,
} from './setup.js'
