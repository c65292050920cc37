export {
  type ApplyOptions,
  type ApplyResult,
  BatchApplier,
  type Change,
  PreparedBatch,
  type RowChange,
  type TruncateChange,
  type WalTransaction,
} from './apply.js'
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
