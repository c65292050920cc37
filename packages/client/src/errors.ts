/**
 * Typed errors of the client SDK (PROTOCOL.md §4.6). Every error carries a stable `code`; callers branch on the
 * code (or `instanceof`), never on the message. Messages never contain SQL parameters or row data.
 */
import type { Rejection } from './sync/rejections.js'

export type SynchroErrorCode =
  | 'NOT_CONNECTED'
  | 'SCHEMA_NOT_LOADED'
  | 'TABLE_NOT_SYNCED'
  | 'UPGRADE_REQUIRED'
  | 'SCHEMA_MISMATCH'
  | 'SNAPSHOT_REQUIRED'
  | 'PUSH_REJECTED'
  | 'WRITE_REJECTED'
  | 'NETWORK_ERROR'
  | 'SERVER_ERROR'
  | 'DATABASE_ERROR'
  | 'INVALID_RESPONSE'
  | 'ALREADY_STARTED'
  | 'NOT_STARTED'
  | 'TRANSACTION_TIMEOUT'
  | 'INVALID_CONFIG'
  | 'INVALID_ARGUMENT'
  | 'CLOSED'

export class SynchroError extends Error {
  readonly code: SynchroErrorCode
  /** True when trying the same request again later can succeed (network, 429/503, retryable push results). */
  readonly retryable: boolean

  constructor(code: SynchroErrorCode, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SynchroError'
    this.code = code
    this.retryable = options?.retryable ?? false
  }
}

export class NotConnectedError extends SynchroError {
  constructor(message = 'client is not connected') {
    super('NOT_CONNECTED', message)
    this.name = 'NotConnectedError'
  }
}

export class SchemaNotLoadedError extends SynchroError {
  constructor(message = 'the server schema has not been loaded yet; call start() first') {
    super('SCHEMA_NOT_LOADED', message)
    this.name = 'SchemaNotLoadedError'
  }
}

export class TableNotSyncedError extends SynchroError {
  readonly table: string
  constructor(table: string) {
    super('TABLE_NOT_SYNCED', `table ${JSON.stringify(table)} is not synced`)
    this.name = 'TableNotSyncedError'
    this.table = table
  }
}

export class UpgradeRequiredError extends SynchroError {
  readonly currentVersion: string
  readonly minimumVersion: string | null
  constructor(currentVersion: string, minimumVersion: string | null = null) {
    super('UPGRADE_REQUIRED', 'client upgrade required')
    this.name = 'UpgradeRequiredError'
    this.currentVersion = currentVersion
    this.minimumVersion = minimumVersion
  }
}

export class SchemaMismatchError extends SynchroError {
  readonly serverVersion: number
  readonly serverHash: string
  constructor(serverVersion: number, serverHash: string) {
    super('SCHEMA_MISMATCH', 'client schema does not match server schema')
    this.name = 'SchemaMismatchError'
    this.serverVersion = serverVersion
    this.serverHash = serverHash
  }
}

export class SnapshotRequiredError extends SynchroError {
  readonly reason: string
  constructor(reason: string) {
    super('SNAPSHOT_REQUIRED', `snapshot required (${reason}) but not approved`)
    this.name = 'SnapshotRequiredError'
    this.reason = reason
  }
}

export interface RejectedPush {
  recordID: string
  table: string
  status: string
  message?: string
}

export class PushRejectedError extends SynchroError {
  readonly results: RejectedPush[]
  constructor(results: RejectedPush[], retryable: boolean) {
    super('PUSH_REJECTED', `${results.length} pushed change(s) rejected${retryable ? ' (retryable)' : ''}`, {
      retryable,
    })
    this.name = 'PushRejectedError'
    this.results = results
  }
}

/** What `confirmed()` rejects with: the server did not apply the write (see `rejections()`). */
export class WriteRejectedError extends SynchroError {
  readonly rejection: Rejection
  constructor(rejection: Rejection) {
    super(
      'WRITE_REJECTED',
      `${rejection.operation} of ${rejection.table} ${rejection.recordID}: ${rejection.status} (${rejection.reasonCode})`,
    )
    this.name = 'WriteRejectedError'
    this.rejection = rejection
  }
}

export class NetworkError extends SynchroError {
  constructor(message: string, cause?: unknown) {
    super('NETWORK_ERROR', message, { cause, retryable: true })
    this.name = 'NetworkError'
  }
}

export class ServerError extends SynchroError {
  readonly status: number
  /** Seconds from `Retry-After` (or the body's `retry_after`); 0 when absent. */
  readonly retryAfter: number
  constructor(status: number, message: string, retryAfter = 0) {
    // 429 and 503 are the only statuses the protocol defines as "try again later" (§1.2, §1.3).
    super('SERVER_ERROR', `server error ${status}: ${message}`, { retryable: status === 429 || status === 503 })
    this.name = 'ServerError'
    this.status = status
    this.retryAfter = retryAfter
  }
}

export class DatabaseError extends SynchroError {
  constructor(message: string, cause?: unknown) {
    super('DATABASE_ERROR', message, { cause })
    this.name = 'DatabaseError'
  }
}

export class InvalidResponseError extends SynchroError {
  constructor(message: string) {
    super('INVALID_RESPONSE', message)
    this.name = 'InvalidResponseError'
  }
}

export class AlreadyStartedError extends SynchroError {
  constructor() {
    super('ALREADY_STARTED', 'sync is already started')
    this.name = 'AlreadyStartedError'
  }
}

export class NotStartedError extends SynchroError {
  constructor() {
    super('NOT_STARTED', 'sync is not started; call start() first')
    this.name = 'NotStartedError'
  }
}

export class TransactionTimeoutError extends SynchroError {
  constructor(ms: number) {
    super('TRANSACTION_TIMEOUT', `transaction did not finish within ${ms} ms`)
    this.name = 'TransactionTimeoutError'
  }
}

export class ConfigError extends SynchroError {
  readonly field: string
  constructor(field: string, message: string) {
    super('INVALID_CONFIG', `invalid config ${field}: ${message}`)
    this.name = 'ConfigError'
    this.field = field
  }
}

export class InvalidArgumentError extends SynchroError {
  constructor(message: string) {
    super('INVALID_ARGUMENT', message)
    this.name = 'InvalidArgumentError'
  }
}

export class ClosedError extends SynchroError {
  constructor() {
    super('CLOSED', 'client is closed')
    this.name = 'ClosedError'
  }
}

/** True for errors worth retrying within a sync cycle (§4.4). */
export function isRetryable(err: unknown): boolean {
  return err instanceof SynchroError && err.retryable
}
