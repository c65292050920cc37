import { DEFAULT_BODY_LIMIT, HEADERS, ROUTE_PREFIX, ROUTES, type RouteName, WIRE_ERRORS } from '@synchro/protocol'
import type { Authenticator } from '../auth/auth.js'
import type { SyncService } from '../core/service.js'
import { isTransientError } from '../errors.js'
import { Admission, type AdmissionLimits, DEFAULT_ADMISSION } from '../limits/admission.js'
import { RequestDeadline } from '../limits/deadline.js'
import { traceRequest } from '../telemetry/tracing.js'
import type { Logger } from '../util/log.js'
import { safeErrorFacts } from '../util/log.js'
import { belowMinimum } from '../util/semver.js'
import { answerBy } from './answer.js'
import { eventStream } from './events.js'
import { identify } from './identity.js'
import { type EngineCall, handlePost } from './post.js'
import {
  clientErrorResponse,
  error,
  INTERNAL_ERROR_STATUS,
  json,
  retryable,
  retryableWire,
  wireError,
} from './responses.js'

export { CLIENT_CLOSED_REQUEST, json } from './responses.js'

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
  /** Seconds in Retry-After for transient database errors, deadlines and admission refusals (default 5). */
  retryAfterSeconds?: number
  /**
   * Deadline of every /sync request in ms (default 5000): when the request makes no progress (no database round
   * trip completes) for this long, the answer is 503 + Retry-After and its transaction does not commit (a commit
   * already under way is waited for). Also its statement and lock timeout. 0 = none.
   */
  requestTimeoutMs?: number
  /** Requests served at once, all users (default 256); beyond → 503 + Retry-After. 0 = unbounded. */
  maxInFlight?: number
  /** Requests served at once per user (default 8); beyond → 429 + Retry-After. 0 = unbounded. */
  maxInFlightPerUser?: number
  /** Request body bytes held at once, all requests (default 16 MiB); beyond → 503 + Retry-After. 0 = unbounded. */
  maxBodyBytesInFlight?: number
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

type Route = { method: 'GET' | 'POST'; endpoint: RouteName }

/** The protocol's routes by path. */
const BY_PATH = new Map<string, Route>(
  Object.entries(ROUTES).map(([endpoint, r]) => [r.path, { method: r.method, endpoint: endpoint as RouteName }]),
)

const FAILED: Record<Route['endpoint'], keyof typeof WIRE_ERRORS> = {
  register: 'register_failed',
  pull: 'pull_failed',
  push: 'push_failed',
  snapshot: 'snapshot_failed',
  tables: 'tables_failed',
  schema: 'schema_failed',
  events: 'events_failed',
}

/** Body of a rate-limit hook's refusal, by the status it chose (default: rate_limited's). */
const REASON: Record<number, string> = {
  [WIRE_ERRORS.rate_limited.status]: WIRE_ERRORS.rate_limited.message,
  [WIRE_ERRORS.service_unavailable.status]: 'Service Unavailable',
}

/**
 * The Web-standard sync handler `(Request) => Promise<Response>` (PROTOCOL.md §1): auth → version gate → routes.
 * Mount it in node:http (toNodeListener), Express, Fastify, Hono, Next.js route handlers, Bun, Deno.
 */
export function createSyncHandler(
  engine: SyncService,
  options: SyncHandlerOptions,
): (request: Request) => Promise<Response> {
  const basePath = (options.basePath ?? '').replace(/\/+$/, '')
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT
  const retryAfter = options.retryAfterSeconds ?? 5
  const logger = options.logger ?? engine.ctx.logger
  const minVersion = engine.minClientVersion
  const timeoutMs = options.requestTimeoutMs ?? 5_000 // 0: no deadline
  const admission = new Admission({
    maxInFlight: options.maxInFlight ?? DEFAULT_ADMISSION.maxInFlight,
    maxInFlightPerUser: options.maxInFlightPerUser ?? DEFAULT_ADMISSION.maxInFlightPerUser,
    maxBodyBytesInFlight: options.maxBodyBytesInFlight ?? DEFAULT_ADMISSION.maxBodyBytesInFlight,
  } satisfies AdmissionLimits)
  const unavailable = () => retryableWire('service_unavailable', retryAfter)

  async function handle(request: Request, url: URL, path: string): Promise<Response> {
    if (path === '/healthz' && request.method === 'GET') return json(200, { status: 'ok' })
    if (!path.startsWith(ROUTE_PREFIX)) return wireError('not_found')

    // 1. Authentication (401 beats 426 beats 405/400/404).
    const userId = await identify(request, options.authenticate, logger, unavailable)
    if (typeof userId !== 'string') return userId
    // 2. Version gate: only when a minimum is configured and the header is present.
    const appVersion = request.headers.get(HEADERS.appVersion)
    if (minVersion && appVersion !== null && belowMinimum(appVersion, minVersion)) {
      return wireError('upgrade_required')
    }
    const route = BY_PATH.get(path)
    if (!route) return wireError('not_found')
    if (request.method !== route.method) return wireError('method_not_allowed', undefined, { allow: route.method })
    if (options.rateLimit) {
      const rejection = await options.rateLimit({ request, userId, route: path })
      if (rejection) {
        const status = rejection.status ?? WIRE_ERRORS.rate_limited.status
        const seconds = Math.max(0, Math.ceil(rejection.retryAfterSeconds))
        return retryable(status, REASON[status] ?? WIRE_ERRORS.rate_limited.message, seconds)
      }
    }
    // 3. Admission: bounded in-flight work, per user (429) and in total (503).
    const ticket = admission.enter(userId)
    if (ticket === 'user') return retryableWire('rate_limited', retryAfter)
    if (ticket === 'global') return unavailable()
    // The slots are held until the database work ends, even when the deadline answered first.
    const call: EngineCall = (fn) => {
      const deadline = new RequestDeadline(timeoutMs > 0 ? timeoutMs : Number.POSITIVE_INFINITY)
      const work = fn(deadline)
        .catch((err: unknown) => mapError(route.endpoint, err))
        .finally(() => ticket.release())
      return answerBy(work, deadline, timeoutMs, unavailable)
    }
    try {
      switch (route.endpoint) {
        case 'tables':
          return await call(async () => json(200, await engine.tablesMeta()))
        case 'schema':
          return await call(async () => json(200, await engine.schema()))
        case 'events':
          return await call(() => eventStream(engine, request, userId, url))
        default:
          return await handlePost(engine, route.endpoint, request, userId, ticket, call, { bodyLimit, unavailable })
      }
    } catch (err) {
      ticket.release()
      return mapError(route.endpoint, err)
    }
  }

  function mapError(endpoint: Route['endpoint'], err: unknown): Response {
    const answer = clientErrorResponse(err)
    if (answer) return answer
    if (isTransientError(err)) return unavailable()
    logger.error({ err: errInfo(err), endpoint }, 'request failed')
    return wireError(FAILED[endpoint])
  }

  return async (request: Request): Promise<Response> => {
    const started = performance.now()
    let url: URL
    try {
      url = new URL(request.url)
    } catch {
      return wireError('invalid_request_body')
    }
    let path = url.pathname
    if (basePath && path.startsWith(basePath)) path = path.slice(basePath.length) || '/'
    let response: Response
    try {
      response = await traceRequest(request, BY_PATH.has(path) ? path : 'other', () => handle(request, url, path))
    } catch (err) {
      logger.error({ err: errInfo(err) }, 'unhandled error in sync handler')
      response = error(INTERNAL_ERROR_STATUS, 'internal error')
    }
    options.onResponse?.({
      route: BY_PATH.has(path) ? path : path === '/healthz' ? '/healthz' : 'other',
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
