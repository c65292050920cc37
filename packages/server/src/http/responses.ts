import { HEADERS, type SchemaMismatchBody, WIRE_ERRORS, type WireErrorCode } from '@synchro/protocol'
import { SchemaMismatchError, wireCodeOf } from '../errors.js'
import { renderJsonBytes } from '../pull/record.js'

/** The one status that is not a wire error of its own: an unexpected failure outside any endpoint. */
export const INTERNAL_ERROR_STATUS = 500

/** A JSON response with the protocol's content type (a UTF-8 body: see renderJsonBytes). */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(renderJsonBytes(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  })
}

export function error(status: number, message: string, headers?: Record<string, string>): Response {
  return json(status, { error: message }, headers)
}

/** A wire error: its status from WIRE_ERRORS, body `{error}` with its message unless a specific one is given. */
export function wireError(code: WireErrorCode, message?: string, headers?: Record<string, string>): Response {
  return error(WIRE_ERRORS[code].status, message ?? WIRE_ERRORS[code].message, headers)
}

export function retryable(status: number, message: string, seconds: number): Response {
  return json(status, { error: message, retry_after: seconds }, { [HEADERS.retryAfter]: String(seconds) })
}

/** A retryable wire error (429 / 503) with Retry-After. */
export function retryableWire(code: 'rate_limited' | 'service_unavailable', seconds: number): Response {
  return retryable(WIRE_ERRORS[code].status, WIRE_ERRORS[code].message, seconds)
}

/**
 * The answer to an error a client caused (it carries its wire code, see wireCodeOf): the code's status, the error's
 * message as body; a schema mismatch carries the server's pair. Undefined for any other error.
 */
export function clientErrorResponse(err: unknown): Response | undefined {
  const code = wireCodeOf(err)
  if (!code) return undefined
  if (err instanceof SchemaMismatchError) {
    const body: SchemaMismatchBody = {
      code: 'schema_mismatch',
      message: WIRE_ERRORS.schema_mismatch.message,
      server_schema_version: err.serverSchemaVersion,
      server_schema_hash: err.serverSchemaHash,
    }
    return json(WIRE_ERRORS[code].status, body)
  }
  return wireError(code, (err as Error).message)
}

/** Status reported to `onResponse` for a request whose client disconnected while sending its body. */
export const CLIENT_CLOSED_REQUEST = 499
