/**
 * Wire error registry: every error body the server produces, with its HTTP status, meaning and fix.
 * `docs/errors.md` is generated from this table (`npm run docs:errors`).
 */
export const WIRE_ERRORS = {
  invalid_request_body: {
    status: 400,
    message: 'invalid request body',
    meaning:
      'The body is not a JSON object, or a field has the wrong type (e.g. a string checkpoint, a non-RFC 3339 timestamp).',
    fix: 'Send a JSON object whose fields match PROTOCOL.md §1.5.',
  },
  missing_key: {
    status: 400,
    message: '<key> is required',
    meaning: 'A required key is absent (a key whose value is null counts as present).',
    fix: 'Send the key named in the message.',
  },
  too_many_changes: {
    status: 400,
    message: 'too many changes',
    meaning: 'A push carried more than 1000 changes.',
    fix: 'Split the push into batches of at most 1000 changes.',
  },
  missing_user_identity: {
    status: 401,
    message: 'missing user identity',
    meaning: 'No user id reached the handler (dev header mode: X-User-ID absent or empty).',
    fix: 'Send X-User-ID in dev mode, or a valid Bearer token.',
  },
  malformed_authorization: {
    status: 401,
    message: 'missing or malformed authorization header',
    meaning: 'JWT mode and the Authorization header is absent or does not start with "Bearer ".',
    fix: 'Send `Authorization: Bearer <jwt>`.',
  },
  invalid_token: {
    status: 401,
    message: 'invalid token',
    meaning: 'The token cannot be parsed, its signature or algorithm is wrong, it expired or is not valid yet.',
    fix: 'Obtain a fresh token signed with the configured key.',
  },
  token_missing_user_claim: {
    status: 401,
    message: 'token missing user claim',
    meaning: 'The user claim (default `sub`) is absent, empty or not a string.',
    fix: 'Issue tokens carrying the configured user claim.',
  },
  client_not_registered: {
    status: 404,
    message: 'client not registered',
    meaning: 'pull/push/snapshot for a client_id that has not called /sync/register under this user.',
    fix: 'Call POST /sync/register first.',
  },
  not_found: {
    status: 404,
    message: 'not found',
    meaning: 'No such route.',
    fix: 'Use one of the six /sync endpoints.',
  },
  method_not_allowed: {
    status: 405,
    message: 'method not allowed',
    meaning: 'Wrong HTTP method for the route; the Allow header names the right one.',
    fix: 'Use the method in the Allow header.',
  },
  schema_mismatch: {
    status: 409,
    message: 'client schema does not match server schema',
    meaning: "The request's schema pair differs from the server's current pair.",
    fix: 'Fetch GET /sync/schema, migrate the local database, retry with the new pair.',
  },
  payload_too_large: {
    status: 413,
    message: 'request body too large',
    meaning: 'The body exceeds the configured limit (default 10 MiB).',
    fix: 'Send smaller batches.',
  },
  upgrade_required: {
    status: 426,
    message: 'client upgrade required',
    meaning: 'X-App-Version (or the registered app_version) is below the minimum or unparseable.',
    fix: 'Upgrade the app.',
  },
  stale_client_rejected: {
    status: 403,
    message: 'client rejected as stale',
    meaning: 'The onStaleClient hook refused this client.',
    fix: 'Re-register the client and take a fresh snapshot.',
  },
  too_many_clients: {
    status: 403,
    message: 'too many clients for this user',
    meaning: 'Register of a new client_id while the user already has the maximum number of active clients.',
    fix: 'Reuse a client_id, let stale clients be deactivated by compaction, or raise maxClientsPerUser.',
  },
  rate_limited: {
    status: 429,
    message: 'Too Many Requests',
    meaning:
      'The rate-limit/backpressure hook refused the request, or this user already has the maximum number of ' +
      'requests in flight (maxInFlightPerUser).',
    fix: 'Retry after the number of seconds in Retry-After.',
  },
  service_unavailable: {
    status: 503,
    message: 'service temporarily unavailable',
    meaning:
      'The database is unreachable or did not answer within the request deadline, a transient error occurred (the ' +
      'JWKS endpoint could not be read and no key set was read before), or the server is at its in-flight bound ' +
      '(maxInFlight, maxBodyBytesInFlight).',
    fix: 'Retry after the number of seconds in Retry-After.',
  },
  register_failed: {
    status: 500,
    message: 'failed to register client',
    meaning: 'Unexpected error in register.',
    fix: 'See server logs.',
  },
  pull_failed: {
    status: 500,
    message: 'failed to pull changes',
    meaning: 'Unexpected error in pull.',
    fix: 'See server logs.',
  },
  push_failed: {
    status: 500,
    message: 'failed to push changes',
    meaning: 'Unexpected error in push.',
    fix: 'See server logs.',
  },
  snapshot_failed: {
    status: 500,
    message: 'failed to snapshot',
    meaning: 'Unexpected error in snapshot.',
    fix: 'See server logs.',
  },
  events_failed: {
    status: 500,
    message: 'failed to open event stream',
    meaning: 'Unexpected error opening GET /sync/events.',
    fix: 'See server logs; clients fall back to timer-driven sync.',
  },
  tables_failed: {
    status: 500,
    message: 'failed to load table metadata',
    meaning: 'The schema contract cannot be built (e.g. an unsupported column type).',
    fix: 'See server logs; fix the registered table.',
  },
  schema_failed: {
    status: 500,
    message: 'failed to load schema',
    meaning: 'The schema contract cannot be built (e.g. an unsupported column type).',
    fix: 'See server logs; fix the registered table.',
  },
} as const satisfies Record<string, { status: number; message: string; meaning: string; fix: string }>

export type WireErrorCode = keyof typeof WIRE_ERRORS

/** Standard error body `{"error": string}`. */
export interface ErrorBody {
  error: string
}

/** Retryable error body (429/503). */
export interface RetryableErrorBody {
  error: string
  retry_after: number
}

/** 409 schema mismatch body. */
export interface SchemaMismatchBody {
  code: 'schema_mismatch'
  message: string
  server_schema_version: number
  server_schema_hash: string
}
