import * as v from 'valibot'
import { WIRE_ERRORS } from './errors.js'
import { parseJsonLossless } from './json.js'
import { pullRequest, pullRequiredKeys } from './pull.js'
import { pushRequest, pushRequiredKeys } from './push.js'
import { registerRequest, registerRequiredKeys } from './register.js'
import { snapshotRequest, snapshotRequiredKeys } from './snapshot.js'

const endpoints = {
  register: { schema: registerRequest, required: registerRequiredKeys },
  pull: { schema: pullRequest, required: pullRequiredKeys },
  push: { schema: pushRequest, required: pushRequiredKeys },
  snapshot: { schema: snapshotRequest, required: snapshotRequiredKeys },
} as const

export type Endpoint = keyof typeof endpoints
export type RequestOf<E extends Endpoint> = v.InferOutput<(typeof endpoints)[E]['schema']>

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; error: string }

/**
 * Decode a POST body in the order of PROTOCOL.md §1.3: JSON object → required keys (in order) → types.
 * Returns the wire error message on failure.
 */
export function decodeRequest<E extends Endpoint>(endpoint: E, body: string): DecodeResult<RequestOf<E>> {
  const parsed = parseFirstValue(body)
  if (parsed === INVALID) return { ok: false, error: WIRE_ERRORS.invalid_request_body.message }
  // A plain object only: an array, or a JsonDecimal (an exact number), is not a body.
  if (parsed === null || typeof parsed !== 'object' || Object.getPrototypeOf(parsed) !== Object.prototype) {
    return { ok: false, error: WIRE_ERRORS.invalid_request_body.message }
  }
  const spec = endpoints[endpoint]
  for (const key of spec.required) {
    if (!Object.hasOwn(parsed, key)) return { ok: false, error: `${key} is required` }
  }
  const result = v.safeParse(spec.schema, parsed)
  if (!result.success) return { ok: false, error: WIRE_ERRORS.invalid_request_body.message }
  return { ok: true, value: result.output as RequestOf<E> }
}

const INVALID = Symbol('invalid')

/** The first JSON value of `text`, numbers exact (§1.3: "only the first JSON value is read", as Go's json.Decoder). */
function parseFirstValue(text: string): unknown {
  try {
    return parseJsonLossless(text, { firstValueOnly: true })
  } catch {
    return INVALID
  }
}
