import {
  DEFAULT_BODY_LIMIT,
  decodeRequest,
  type Endpoint,
  MAX_PUSH_CHANGES,
  type RequestOf,
  type SchemaMismatchBody,
  WIRE_ERRORS,
} from '@synchro/protocol'
import { AuthError, type Authenticator } from '../auth/auth.js'
import type { Engine } from '../engine/engine.js'
import type { Logger } from '../engine/types.js'
import {
  BadRequestError,
  ClientNotRegisteredError,
  isTransientError,
  SchemaMismatchError,
  StaleClientRejectedError,
  UpgradeRequiredError,
} from '../errors.js'
import { traceRequest } from '../telemetry/tracing.js'
import { safeErrorFacts } from '../util/log.js'
import { belowMinimum } from '../util/semver.js'
import { eventStream } from './events.js'

/** Answer from a rate-limit / backpressure hook: reject with `status` and `Retry-After`. */
export interface RateLimitRejection {
  status?: number
  retryAfterSeconds: number
}

export interface SyncHandlerOptions {
  /** How callers are identified (default: dev header `X-User-ID`, see headerAuth). */
  authenticate: Authenticator
  /** Prefix stripped before routing, e.g. '/api' when mounted under /api (default ''). */
  basePath?: string
  /** Maximum request body in bytes (default 10 MiB) → 413. */
  bodyLimit?: number
  /** Seconds in Retry-After for transient database errors (default 5). */
  retryAfterSeconds?: number
  /** Backpressure / rate-limit hook run after authentication; return a rejection to answer 429 (or its status). */
  rateLimit?: (ctx: {
    request: Request
    userId: string
    route: string
  }) => RateLimitRejection | undefined | Promise<RateLimitRejection | undefined>
  /** Called once per answered request (metrics); status 499 = the client disconnected while sending its body. */
  onResponse?: (info: { route: string; method: string; status: number; durationMs: number }) => void
  logger?: Logger
}

type Route = { method: 'GET' | 'POST'; endpoint: Endpoint | 'tables' | 'schema' | 'events' }

const ROUTES: Record<string, Route> = {
  '/sync/register': { method: 'POST', endpoint: 'register' },
  '/sync/pull': { method: 'POST', endpoint: 'pull' },
  '/sync/push': { method: 'POST', endpoint: 'push' },
  '/sync/snapshot': { method: 'POST', endpoint: 'snapshot' },
  '/sync/tables': { method: 'GET', endpoint: 'tables' },
  '/sync/schema': { method: 'GET', endpoint: 'schema' },
  // Extension: live change notifications (Server-Sent Events).
  '/sync/events': { method: 'GET', endpoint: 'events' },
}

const FAILED: Record<Route['endpoint'], keyof typeof WIRE_ERRORS> = {
  register: 'register_failed',
  pull: 'pull_failed',
  push: 'push_failed',
  snapshot: 'snapshot_failed',
  tables: 'tables_failed',
  schema: 'schema_failed',
  events: 'events_failed',
}

const REASON: Record<number, string> = { 429: 'Too Many Requests', 503: 'Service Unavailable' }

/** A JSON response with the protocol's content type. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  })
}

function error(status: number, message: string, headers?: Record<string, string>): Response {
  return json(status, { error: message }, headers)
}

function retryable(status: number, message: string, seconds: number): Response {
  return json(status, { error: message, retry_after: seconds }, { 'retry-after': String(seconds) })
}

/** Status reported to `onResponse` for a request whose client disconnected while sending its body. */
export const CLIENT_CLOSED_REQUEST = 499

class BodyTooLarge extends Error {}
class BodyInvalid extends Error {}

/** Reads the body as UTF-8 text, enforcing the byte limit while streaming (a huge body is never buffered). */
async function readBody(request: Request, limit: number): Promise<string> {
  const declared = request.headers.get('content-length')
  if (declared !== null && Number(declared) > limit) throw new BodyTooLarge()
  if (!request.body) return ''
  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => {})
      throw new BodyTooLarge()
    }
    chunks.push(value)
  }
  const buf = new Uint8Array(size)
  let off = 0
  for (const c of chunks) {
    buf.set(c, off)
    off += c.byteLength
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf)
  } catch {
    throw new BodyInvalid()
  }
}

/**
 * The Web-standard sync handler `(Request) => Promise<Response>` (PROTOCOL.md §1): auth → version gate → routes.
 * Mount it in node:http (toNodeListener), Express, Fastify, Hono, Next.js route handlers, Bun, Deno.
 */
export function createSyncHandler(
  engine: Engine,
  options: SyncHandlerOptions,
): (request: Request) => Promise<Response> {
  const basePath = (options.basePath ?? '').replace(/\/+$/, '')
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT
  const retryAfter = options.retryAfterSeconds ?? 5
  const logger = options.logger ?? engine.ctx.logger
  const minVersion = engine.minClientVersion

  async function handle(request: Request, url: URL, path: string): Promise<Response> {
    if (path === '/healthz' && request.method === 'GET') return json(200, { status: 'ok' })
    if (!path.startsWith('/sync/')) return error(404, WIRE_ERRORS.not_found.message)

    // 1. Authentication (401 beats 426 beats 405/400/404).
    let userId: string
    try {
      userId = (await options.authenticate(request)).toLowerCase()
      if (userId === '') throw new AuthError(WIRE_ERRORS.missing_user_identity.message)
      // An identity PostgreSQL cannot store (NUL) is not a usable identity.
      if (userId.includes('\u0000')) throw new AuthError(WIRE_ERRORS.invalid_token.message)
    } catch (err) {
      if (err instanceof AuthError) return error(401, err.message)
      if (isTransientError(err)) return retryable(503, WIRE_ERRORS.service_unavailable.message, retryAfter)
      logger.error({ err: errInfo(err) }, 'authenticator failed')
      return error(401, WIRE_ERRORS.invalid_token.message)
    }
    // 2. Version gate: only when a minimum is configured and the header is present.
    const appVersion = request.headers.get('x-app-version')
    if (minVersion && appVersion !== null && belowMinimum(appVersion, minVersion)) {
      return error(426, WIRE_ERRORS.upgrade_required.message)
    }
    const route = ROUTES[path]
    if (!route) return error(404, WIRE_ERRORS.not_found.message)
    if (request.method !== route.method) {
      return error(405, WIRE_ERRORS.method_not_allowed.message, { allow: route.method })
    }
    if (options.rateLimit) {
      const rejection = await options.rateLimit({ request, userId, route: path })
      if (rejection) {
        const status = rejection.status ?? 429
        const seconds = Math.max(0, Math.ceil(rejection.retryAfterSeconds))
        return retryable(status, REASON[status] ?? 'Too Many Requests', seconds)
      }
    }
    try {
      switch (route.endpoint) {
        case 'tables':
          return json(200, await engine.tablesMeta())
        case 'schema':
          return json(200, await engine.schema())
        case 'events':
          return await eventStream(engine, request, userId, url)
        default:
          return await handlePost(route.endpoint, request, userId)
      }
    } catch (err) {
      return mapError(route.endpoint, err)
    }
  }

  async function handlePost(endpoint: Endpoint, request: Request, userId: string): Promise<Response> {
    let text: string
    try {
      text = await readBody(request, bodyLimit)
    } catch (err) {
      if (err instanceof BodyTooLarge) return error(413, WIRE_ERRORS.payload_too_large.message)
      if (err instanceof BodyInvalid) return error(400, WIRE_ERRORS.invalid_request_body.message)
      // The body stream failed: the client went away mid-body and nobody reads this answer. Not a server fault, so
      // not a 503: 499 (nginx's "client closed request") lets metrics count it apart.
      return error(CLIENT_CLOSED_REQUEST, 'client closed request')
    }
    const decoded = decodeRequest(endpoint, text)
    if (!decoded.ok) return error(400, decoded.error)
    switch (endpoint) {
      case 'register':
        return json(200, await engine.register(userId, decoded.value as RequestOf<'register'>))
      case 'pull':
        return json(200, await engine.pull(userId, decoded.value as RequestOf<'pull'>))
      case 'push': {
        const req = decoded.value as RequestOf<'push'>
        if ((req.changes?.length ?? 0) > MAX_PUSH_CHANGES) return error(400, WIRE_ERRORS.too_many_changes.message)
        return json(200, await engine.push(userId, req))
      }
      case 'snapshot':
        return json(200, await engine.snapshot(userId, decoded.value as RequestOf<'snapshot'>))
    }
  }

  function mapError(endpoint: Route['endpoint'], err: unknown): Response {
    if (err instanceof SchemaMismatchError) {
      const body: SchemaMismatchBody = {
        code: 'schema_mismatch',
        message: WIRE_ERRORS.schema_mismatch.message,
        server_schema_version: err.serverSchemaVersion,
        server_schema_hash: err.serverSchemaHash,
      }
      return json(409, body)
    }
    if (err instanceof UpgradeRequiredError) return error(426, WIRE_ERRORS.upgrade_required.message)
    if (err instanceof ClientNotRegisteredError) return error(404, WIRE_ERRORS.client_not_registered.message)
    if (err instanceof StaleClientRejectedError) return error(403, WIRE_ERRORS.stale_client_rejected.message)
    if (err instanceof BadRequestError) return error(400, err.message)
    if (isTransientError(err)) return retryable(503, WIRE_ERRORS.service_unavailable.message, retryAfter)
    logger.error({ err: errInfo(err), endpoint }, 'request failed')
    return error(500, WIRE_ERRORS[FAILED[endpoint]].message)
  }

  return async (request: Request): Promise<Response> => {
    const started = performance.now()
    let url: URL
    try {
      url = new URL(request.url)
    } catch {
      return error(400, WIRE_ERRORS.invalid_request_body.message)
    }
    let path = url.pathname
    if (basePath && path.startsWith(basePath)) path = path.slice(basePath.length) || '/'
    let response: Response
    try {
      response = await traceRequest(request, ROUTES[path] ? path : 'other', () => handle(request, url, path))
    } catch (err) {
      logger.error({ err: errInfo(err) }, 'unhandled error in sync handler')
      response = error(500, 'internal error')
    }
    options.onResponse?.({
      route: ROUTES[path] ? path : path === '/healthz' ? '/healthz' : 'other',
      method: request.method,
      status: response.status,
      durationMs: performance.now() - started,
    })
    return response
  }
}

/** Error facts safe to log: name, code, message — never SQL parameters or row data (see safeErrorFacts). */
export function errInfo(err: unknown): Record<string, unknown> {
  return safeErrorFacts(err)
}
