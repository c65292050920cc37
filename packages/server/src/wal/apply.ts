// The changelog writer moved to changelog/ (writer.ts, compute.ts, output.ts, changes.ts) and the edge state to
// buckets/edges.ts. These re-exports keep older import paths working.
export type { Change, RowChange, TruncateChange, WalTransaction } from '../changelog/changes.js'
export { type ApplyOptions, type ApplyResult, BatchApplier, PreparedBatch } from '../changelog/writer.js'
