import {
  DEFAULT_BODY_LIMIT,
  decodeRequest,
  type Endpoint,
  HEADERS,
  MAX_PUSH_CHANGES,
  type RequestOf,
  ROUTE_PREFIX,
  ROUTES,
  type RouteName,
  type SchemaMismatchBody,
  WIRE_ERRORS,
  type WireErrorCode,
} from '@synchro/protocol'
import { AuthError, type Authenticator } from '../auth/auth.js'
import type { SyncService } from '../core/service.js'
import { isTransientError, SchemaMismatchError, wireCodeOf } from '../errors.js'
import { Admission, type AdmissionLimits, DEFAULT_ADMISSION, type Ticket } from '../limits/admission.js'
import { RequestDeadline } from '../limits/deadline.js'
import { MAX_IDENTIFIER_LENGTH } from '../limits/limits.js'
import { renderJson } from '../pull/record.js'
import { traceRequest } from '../telemetry/tracing.js'
import type { Logger } from '../util/log.js'
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

/** Runs one request's engine work under a fresh deadline (see answerBy), holding its admission ticket until done. */
type EngineCall = (fn: (deadline: RequestDeadline) => Promise<Response>) => Promise<Response>

/** Body of a rate-limit hook's refusal, by the status it chose (default: rate_limited's). */
const REASON: Record<number, string> = {
  [WIRE_ERRORS.rate_limited.status]: WIRE_ERRORS.rate_limited.message,
  [WIRE_ERRORS.service_unavailable.status]: 'Service Unavailable',
}

/** The one status that is not a wire error of its own: an unexpected failure outside any endpoint. */
const INTERNAL_ERROR_STATUS = 500

/** A JSON response with the protocol's content type. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(renderJson(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  })
}

function error(status: number, message: string, headers?: Record<string, string>): Response {
  return json(status, { error: message }, headers)
}

/** A wire error: its status from WIRE_ERRORS, body `{error}` with its message unless a specific one is given. */
function wireError(code: WireErrorCode, message?: string, headers?: Record<string, string>): Response {
  return error(WIRE_ERRORS[code].status, message ?? WIRE_ERRORS[code].message, headers)
}

function retryable(status: number, message: string, seconds: number): Response {
  return json(status, { error: message, retry_after: seconds }, { [HEADERS.retryAfter]: String(seconds) })
}

/** A retryable wire error (429 / 503) with Retry-After. */
function retryableWire(code: 'rate_limited' | 'service_unavailable', seconds: number): Response {
  return retryable(WIRE_ERRORS[code].status, WIRE_ERRORS[code].message, seconds)
}

/**
 * The answer to an error a client caused (it carries its wire code, see wireCodeOf): the code's status, the error's
 * message as body; a schema mismatch carries the server's pair. Undefined for any other error.
 */
function clientErrorResponse(err: unknown): Response | undefined {
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

class BodyTooLarge extends Error {}
class BodyInvalid extends Error {}
class BodyBudgetExhausted extends Error {}

/**
 * Reads the body as UTF-8 text, enforcing the byte limit while streaming (a huge body is never buffered) and
 * reserving its bytes in the global body budget first (declared length) or as they arrive (chunked).
 */
async function readBody(request: Request, limit: number, ticket: Ticket): Promise<string> {
  const declared = request.headers.get('content-length')
  if (declared !== null && Number(declared) > limit) throw new BodyTooLarge()
  let reserved = declared !== null && Number(declared) > 0 ? Number(declared) : 0
  if (!ticket.reserve(reserved)) throw new BodyBudgetExhausted()
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
    if (size > reserved) {
      const more = size - reserved
      if (!ticket.reserve(more)) {
        await reader.cancel().catch(() => {})
        throw new BodyBudgetExhausted()
      }
      reserved = size
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
    let userId: string
    try {
      userId = (await options.authenticate(request)).toLowerCase()
      if (userId === '') throw new AuthError(WIRE_ERRORS.missing_user_identity.message)
      // An identity PostgreSQL cannot store (NUL) or index (thousands of characters) is not a usable identity.
      if (userId.includes('\u0000') || userId.length > MAX_IDENTIFIER_LENGTH) {
        throw new AuthError(WIRE_ERRORS.invalid_token.message)
      }
    } catch (err) {
      if (err instanceof AuthError) return clientErrorResponse(err) ?? wireError('invalid_token', err.message)
      if (isTransientError(err)) return unavailable()
      logger.error({ err: errInfo(err) }, 'authenticator failed')
      return wireError('invalid_token')
    }
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
      return answerBy(work, deadline)
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
          return await handlePost(route.endpoint, request, userId, ticket, call)
      }
    } catch (err) {
      ticket.release()
      return mapError(route.endpoint, err)
    }
  }

  /**
   * The work's answer, or 503 + Retry-After once the deadline passes first (unless a commit is under way). The
   * deadline moves on while the work makes progress (RequestDeadline), so the timer re-arms until it really passed.
   */
  function answerBy(work: Promise<Response>, deadline: RequestDeadline): Promise<Response> {
    if (!(timeoutMs > 0)) return work
    return new Promise<Response>((resolve) => {
      let answered = false
      let timer: NodeJS.Timeout
      const check = () => {
        const left = deadline.remainingMs()
        if (left > 1) {
          timer = setTimeout(check, left)
          return
        }
        if (!deadline.expire()) return // committing: the real answer follows
        answered = true
        resolve(unavailable())
      }
      timer = setTimeout(check, timeoutMs)
      void work.then((response) => {
        clearTimeout(timer)
        if (!answered) return resolve(response)
        // Late: nobody will read it; an event stream set up meanwhile must unsubscribe.
        response.body?.cancel().catch(() => {})
      })
    })
  }

  async function handlePost(
    endpoint: Endpoint,
    request: Request,
    userId: string,
    ticket: Ticket,
    call: EngineCall,
  ): Promise<Response> {
    // Reading and decoding the body happen before the deadline starts: it bounds waiting for the database, not a
    // slow upload (the server's request timeout bounds that).
    let text: string
    try {
      text = await readBody(request, bodyLimit, ticket)
    } catch (err) {
      ticket.release()
      if (err instanceof BodyTooLarge) return wireError('payload_too_large')
      if (err instanceof BodyInvalid) return wireError('invalid_request_body')
      if (err instanceof BodyBudgetExhausted) return unavailable()
      // The body stream failed: the client went away mid-body and nobody reads this answer. Not a server fault, so
      // not a 503: 499 (nginx's "client closed request") lets metrics count it apart.
      return error(CLIENT_CLOSED_REQUEST, 'client closed request')
    }
    const decoded = decodeRequest(endpoint, text)
    if (!decoded.ok) {
      ticket.release()
      // The decoder's message names the problem (`<key> is required` is missing_key): both are 400s.
      return wireError('invalid_request_body', decoded.error)
    }
    switch (endpoint) {
      case 'register':
        return call(async (deadline) =>
          json(200, await engine.register(userId, decoded.value as RequestOf<'register'>, { deadline })),
        )
      case 'pull':
        return call(async (deadline) =>
          json(200, await engine.pull(userId, decoded.value as RequestOf<'pull'>, { deadline })),
        )
      case 'push': {
        const req = decoded.value as RequestOf<'push'>
        if ((req.changes?.length ?? 0) > MAX_PUSH_CHANGES) {
          ticket.release()
          return wireError('too_many_changes')
        }
        return call(async (deadline) => json(200, await engine.push(userId, req, { deadline })))
      }
      case 'snapshot':
        return call(async (deadline) =>
          json(200, await engine.snapshot(userId, decoded.value as RequestOf<'snapshot'>, { deadline })),
        )
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
