/**
 * HTTP transport: one place that knows URLs, headers and the error mapping of PROTOCOL.md §4.4.
 */
import {
  HEADERS,
  type PullResponse,
  type PushRecord,
  type PushResponse,
  parseJsonLossless,
  type RegisterResponse,
  ROUTES,
  type SchemaResponse,
  type SnapshotCursor,
  type SnapshotResponse,
  stringifyJsonLossless,
} from '@synchro/protocol'
import {
  InvalidResponseError,
  NetworkError,
  SchemaMismatchError,
  ServerError,
  SynchroError,
  UpgradeRequiredError,
} from '../errors.js'
import { startRequestSpan, type TracerLike } from './tracing.js'

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>

export interface TransportOptions {
  serverURL: string
  fetch: FetchLike
  authProvider?: () => Promise<string> | string
  userID?: string
  appVersion: string
  /** Milliseconds before a request is abandoned as a network failure (0 = never). */
  timeoutMs?: number
  /** OpenTelemetry-shaped tracer: a client span per request, its context sent as `traceparent`. */
  tracer?: TracerLike
}

export interface SchemaPair {
  schema_version: number
  schema_hash: string
}

export class Transport {
  private readonly base: string
  private readonly inflight = new Set<AbortController>()

  constructor(private readonly opts: TransportOptions) {
    this.base = opts.serverURL.replace(/\/+$/, '')
  }

  private active = true

  /** While inactive (sync stopped), requests fail at once and those in flight are aborted (NetworkError). */
  setActive(active: boolean): void {
    this.active = active
    if (!active) for (const c of this.inflight) c.abort()
  }

  getSchema(): Promise<SchemaResponse> {
    return this.request<SchemaResponse>(ROUTES.schema.method, ROUTES.schema.path, undefined, (b) => {
      need(Array.isArray(b.tables), 'schema.tables')
      need(typeof b.schema_version === 'number' && typeof b.schema_hash === 'string', 'schema pair')
    })
  }

  register(body: {
    client_id: string
    client_name: string | null
    platform: string
    app_version: string
    schema_version: number
    schema_hash: string
  }): Promise<RegisterResponse> {
    return this.request<RegisterResponse>(ROUTES.register.method, ROUTES.register.path, body, (b) => {
      need(typeof b.id === 'string', 'register.id')
    })
  }

  pull(
    body: { client_id: string; checkpoint: number; limit: number; known_buckets?: string[] } & SchemaPair,
  ): Promise<PullResponse> {
    return this.request<PullResponse>(ROUTES.pull.method, ROUTES.pull.path, body, (b) => {
      need(typeof b.checkpoint === 'number', 'pull.checkpoint')
      if (b.snapshot_required) return
      need(Array.isArray(b.changes) && Array.isArray(b.deletes), 'pull.changes/deletes')
    })
  }

  push(body: { client_id: string; changes: PushRecord[] } & SchemaPair): Promise<PushResponse> {
    return this.request<PushResponse>(ROUTES.push.method, ROUTES.push.path, body, (b) => {
      need(Array.isArray(b.accepted) && Array.isArray(b.rejected), 'push.accepted/rejected')
    })
  }

  snapshot(
    body: { client_id: string; cursor: SnapshotCursor | null; limit: number } & SchemaPair,
  ): Promise<SnapshotResponse> {
    return this.request<SnapshotResponse>(ROUTES.snapshot.method, ROUTES.snapshot.path, body, (b) => {
      need(Array.isArray(b.records) && typeof b.checkpoint === 'number', 'snapshot.records/checkpoint')
    })
  }

  private headers(json: boolean): Promise<Record<string, string>> {
    return requestHeaders(this.opts, json)
  }

  /**
   * Opens the live event stream (`GET /sync/events`, Server-Sent Events). Resolves with the streaming response;
   * non-200 answers are mapped like any other request (a server without the extension answers 404).
   */
  async openEvents(clientId: string, checkpoint: number, signal: AbortSignal, frames = false): Promise<Response> {
    const headers = await this.headers(false)
    headers.Accept = 'text/event-stream'
    if (!this.active) throw new NetworkError('event stream not opened: sync is stopped')
    let res: Response
    try {
      const query = `client_id=${encodeURIComponent(clientId)}&checkpoint=${checkpoint}${frames ? '&frames=1' : ''}`
      res = await this.opts.fetch(`${this.base}${ROUTES.events.path}?${query}`, {
        method: 'GET',
        headers,
        signal,
      })
    } catch (err) {
      throw new NetworkError('opening the event stream failed', err)
    }
    if (res.status !== 200) {
      const text = await res.text().catch(() => '')
      throw mapError(res, text, this.opts.appVersion)
    }
    return res
  }

  private async request<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    validate: (b: { [k: string]: unknown }) => void,
  ): Promise<T> {
    const headers = await this.headers(body !== undefined)
    if (!this.active) throw new NetworkError(`request to ${path} not sent: sync is stopped`)
    // Every request can be abandoned: on timeout (a hung server must not hang the sync loop) and on stop().
    const ctrl = new AbortController()
    this.inflight.add(ctrl)
    const timeoutMs = this.opts.timeoutMs ?? 0
    const timer = timeoutMs > 0 ? setTimeout(() => ctrl.abort(), timeoutMs) : null
    const endSpan = startRequestSpan(this.opts.tracer, method, path, headers)
    let res: Response | undefined
    let text: string
    try {
      try {
        res = await this.opts.fetch(this.base + path, {
          method,
          headers,
          signal: ctrl.signal,
          ...(body === undefined ? {} : { body: stringifyJsonLossless(body) }),
        })
      } catch (err) {
        throw new NetworkError(`request to ${path} failed${ctrl.signal.aborted ? ' (aborted)' : ''}`, err)
      }
      try {
        text = await res.text()
      } catch (err) {
        throw new NetworkError(`reading the response of ${path} failed`, err)
      }
    } finally {
      if (timer !== null) clearTimeout(timer)
      this.inflight.delete(ctrl)
      endSpan(res?.status)
    }
    if (res.status !== 200) throw mapError(res, text, this.opts.appVersion)
    return parseBody<T>(path, text, validate)
  }
}

/** A 200 answer's body, parsed exactly and checked by `validate`. */
function parseBody<T>(path: string, text: string, validate: (b: { [k: string]: unknown }) => void): T {
  let parsed: unknown
  try {
    // Exact numbers: int8 beyond 2^53 and long numerics must not be rounded on their way into SQLite.
    parsed = parseJsonLossless(text)
  } catch {
    throw new InvalidResponseError(`${path}: response is not JSON`)
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidResponseError(`${path}: response is not a JSON object`)
  }
  try {
    validate(parsed as { [k: string]: unknown })
  } catch (err) {
    if (err instanceof SynchroError) throw err
    throw new InvalidResponseError(`${path}: ${String(err)}`)
  }
  return parsed as T
}

/** Common headers: version, identity (bearer token or dev X-User-ID). */
async function requestHeaders(opts: TransportOptions, json: boolean): Promise<Record<string, string>> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (json) headers['Content-Type'] = 'application/json'
  if (opts.appVersion) headers[HEADERS.appVersion] = opts.appVersion
  if (opts.authProvider) {
    let token: string
    try {
      token = await opts.authProvider()
    } catch (err) {
      // An auth provider that cannot produce a token (offline refresh, for instance) is a transient condition.
      throw new NetworkError('authProvider failed to produce a token', err)
    }
    headers[HEADERS.authorization] = `Bearer ${token}`
  } else if (opts.userID !== undefined) {
    headers[HEADERS.userId] = opts.userID
  }
  return headers
}

function need(ok: boolean, what: string): void {
  if (!ok) throw new InvalidResponseError(`invalid response: ${what}`)
}

/** Seconds from `Retry-After` (delta-seconds, decimals allowed) or the body's `retry_after`; 0 when absent. */
export function parseRetryAfter(header: string | null, body: unknown): number {
  if (header !== null) {
    const n = Number(header.trim())
    if (Number.isFinite(n) && n > 0) return n
  }
  if (body && typeof body === 'object' && 'retry_after' in body) {
    const n = Number((body as { retry_after: unknown }).retry_after)
    if (Number.isFinite(n) && n > 0) return n
  }
  return 0
}

function mapError(res: Response, text: string, appVersion: string): SynchroError {
  let body: unknown = null
  try {
    body = JSON.parse(text)
  } catch {
    // Non-JSON error bodies exist (Go's "404 page not found").
  }
  const obj = body && typeof body === 'object' ? (body as { [k: string]: unknown }) : {}
  if (res.status === 409) {
    const version = typeof obj.server_schema_version === 'number' ? obj.server_schema_version : 0
    const hash = typeof obj.server_schema_hash === 'string' ? obj.server_schema_hash : ''
    return new SchemaMismatchError(version, hash)
  }
  if (res.status === 426) return new UpgradeRequiredError(appVersion)
  const message = typeof obj.error === 'string' ? obj.error : text.slice(0, 200) || res.statusText
  return new ServerError(res.status, message, parseRetryAfter(res.headers.get(HEADERS.retryAfter), body))
}
