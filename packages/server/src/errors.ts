import { WIRE_ERRORS, type WireErrorCode } from '@synchro/protocol'

/**
 * Base class of every error the engine throws on purpose; `code` is stable. Errors a client caused carry their wire
 * code (a key of WIRE_ERRORS in @synchro/protocol): the HTTP layer answers them with that code's status and the
 * error's message as body (see `wireCodeOf`).
 */
export class SynchroError extends Error {
  readonly code: string
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** The wire code of `err` when it is a SynchroError answered as such (status from WIRE_ERRORS), else undefined. */
export function wireCodeOf(err: unknown): WireErrorCode | undefined {
  if (!(err instanceof SynchroError)) return undefined
  return Object.hasOwn(WIRE_ERRORS, err.code) ? (err.code as WireErrorCode) : undefined
}

/** The request's schema pair differs from the server's current pair (HTTP 409). */
export class SchemaMismatchError extends SynchroError {
  constructor(
    readonly serverSchemaVersion: number,
    readonly serverSchemaHash: string,
  ) {
    super('schema_mismatch', WIRE_ERRORS.schema_mismatch.message)
  }
}

/** pull/push/snapshot/events for a client that never registered (HTTP 404). */
export class ClientNotRegisteredError extends SynchroError {
  constructor() {
    super('client_not_registered', WIRE_ERRORS.client_not_registered.message)
  }
}

/** The client's app version is below the minimum or unparseable (HTTP 426). */
export class UpgradeRequiredError extends SynchroError {
  constructor() {
    super('upgrade_required', WIRE_ERRORS.upgrade_required.message)
  }
}

/** The wire codes of a malformed request (all HTTP 400). */
export type BadRequestCode = 'invalid_request_body' | 'missing_key' | 'too_many_changes'

/**
 * A request is well-formed JSON but breaks a protocol limit (HTTP 400); `message` is the answer's body (e.g.
 * `invalid cursor`, `client_id is required`), `code` its wire code.
 */
export class BadRequestError extends SynchroError {
  constructor(message: string, code: BadRequestCode = 'invalid_request_body') {
    super(code, message)
  }
}

/** The onStaleClient hook rejected the client (HTTP 403). */
export class StaleClientRejectedError extends SynchroError {
  constructor() {
    super('stale_client_rejected', WIRE_ERRORS.stale_client_rejected.message)
  }
}

/** Register of a new client for a user who already has the configured maximum of active clients (HTTP 403). */
export class TooManyClientsError extends SynchroError {
  constructor() {
    super('too_many_clients', WIRE_ERRORS.too_many_clients.message)
  }
}

/** The registered tables cannot form a schema contract (unsupported type, no PK, …): HTTP 500 everywhere. */
export class SchemaContractError extends SynchroError {
  constructor(message: string) {
    super('schema_contract', message)
  }
}

/** Library misuse (e.g. compaction called when none is configured). */
export class ConfigurationError extends SynchroError {
  constructor(message: string) {
    super('configuration', message)
  }
}

const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '08000', // connection_exception
  '08003',
  '08006',
  '08001',
  '08004',
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '57014', // query_canceled: the request's statement_timeout (its deadline) passed
  '55P03', // lock_not_available: the request's lock_timeout passed
  'deadline_exceeded', // DeadlineExceededError: the request's own deadline
  'key_set_unavailable', // KeySetUnavailableError (auth/): the JWKS endpoint could not be read
])

const TRANSIENT_MESSAGES = [
  'Connection terminated',
  'connection timeout',
  'timeout exceeded when trying to connect',
  'Cannot use a pool after calling end on the pool',
  'Client has encountered a connection error',
  'terminating connection',
  'the database system is starting up',
  'the database system is shutting down',
  'Query read timeout',
]

/** True for errors that mean "the database is unreachable right now": answered 503 + Retry-After. */
export function isTransientError(err: unknown): boolean {
  const seen = new Set<unknown>()
  let e: unknown = err
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e)
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true
    const message = (e as { message?: unknown }).message
    if (typeof message === 'string' && TRANSIENT_MESSAGES.some((m) => message.includes(m))) return true
    if (e instanceof AggregateError && e.errors.some((x) => isTransientError(x))) return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}
