export {
  type ChangelogOp,
  clampLimit,
  DEFAULT_BODY_LIMIT,
  DEFAULT_LIMIT,
  type DeleteEntry,
  isRfc3339,
  MAX_LIMIT,
  MAX_PUSH_CHANGES,
  OP_DELETE,
  OP_INSERT,
  OP_UPDATE,
  type SyncRecord,
} from './common.js'
export { type DecodeResult, decodeRequest, type Endpoint, type RequestOf } from './decode.js'
export {
  type ErrorBody,
  type RetryableErrorBody,
  type SchemaMismatchBody,
  WIRE_ERRORS,
  type WireErrorCode,
} from './errors.js'
export {
  JsonDecimal,
  numberFromLiteral,
  type ParseJsonOptions,
  parseJsonLossless,
  stringifyJsonLossless,
} from './json.js'
export type { BucketUpdates, PullRequest, PullResponse, SnapshotReason } from './pull.js'
export {
  type PushReasonCode,
  type PushRecord,
  type PushRequest,
  type PushResponse,
  type PushResult,
  type PushStatus,
  ZERO_TIME,
} from './push.js'
export type { RegisterRequest, RegisterResponse } from './register.js'
export { HEADERS, ROUTE_PREFIX, ROUTES, type RouteName } from './routes.js'
export {
  type DefaultKind,
  isWideNumeric,
  type LogicalType,
  type PushPolicy,
  type SchemaColumn,
  type SchemaResponse,
  type SchemaTable,
} from './schema.js'
export type { SnapshotCursor, SnapshotRequest, SnapshotResponse } from './snapshot.js'
export type { TableMeta, TablesResponse } from './tables.js'
