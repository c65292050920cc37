import * as v from 'valibot'
import { WIRE_ERRORS } from './errors.js'
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
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
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

/**
 * Parses the first JSON value of `text`; bytes after it are ignored, as Go's json.Decoder does (§1.3: "only the first
 * JSON value is read"). JSON.parse reports where trailing content starts, so the prefix is parsed again.
 */
function parseFirstValue(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    const m = /after JSON at position (\d+)/.exec((err as Error).message)
    if (!m) return INVALID
    try {
      return JSON.parse(text.slice(0, Number(m[1])))
    } catch {
      return INVALID
    }
  }
}
