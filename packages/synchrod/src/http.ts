import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { ROUTE_PREFIX } from '@synchro/protocol'
import { safeErrorFacts } from '@synchro/server/internal'
import { toNodeListener } from '@synchro/server/node'
import type { Log } from './logger.js'
import { type Metrics, routeLabel } from './metrics.js'
import { ConfigError } from './options/index.js'

export interface ListenAddress {
  /** undefined = all interfaces. */
  host: string | undefined
  port: number
}

/** Parses `[HOST]:PORT` (Go style, as the reference daemon): `:8080`, `127.0.0.1:0`, `[::1]:8080`, `localhost:80`. */
export function parseListenAddr(raw: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(raw.trim())
  const port = m ? Number(m[3]) : Number.NaN
  if (!m || port > 65535) {
    const hint = /^\d+$/.test(raw.trim()) ? ` (did you mean ":${raw.trim()}"?)` : ''
    throw new ConfigError(
      `LISTEN_ADDR: invalid address ${JSON.stringify(raw)}${hint}; expected [HOST]:PORT such as :8080 or 127.0.0.1:8080`,
    )
  }
  const host = m[1] ?? m[2]
  return { host: host === '' ? undefined : host, port }
}

export interface HealthReport {
  status: 'ok' | 'unavailable' | 'shutting_down'
  [key: string]: unknown
}

export interface DaemonServerOptions {
  listen: ListenAddress
  /** The /sync/* handler; absent in consumer-only mode. */
  syncHandler: ((request: Request) => Promise<Response>) | undefined
  health: () => Promise<HealthReport>
  /** Extra routes tried before the sync handler (status page, static web files); `undefined` = not theirs. */
  routes?: ((request: Request, path: string) => Promise<Response | undefined>) | undefined
  metrics: Metrics
  log: Log
}

export interface DaemonServer {
  /** `http://host:port` actually bound (a real port even for `:0`). */
  url: string
  /** Stops accepting, lets in-flight requests finish (up to `timeoutMs`), then cuts what is left. */
  close(timeoutMs: number): Promise<void>
}

const REQUEST_ID_RE = /^[A-Za-z0-9._:/+=-]{1,128}$/

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
}

/** Wraps the sync handler with /healthz, /metrics, request ids and one access-log line per request. */
export function daemonHandler(opts: Omit<DaemonServerOptions, 'listen'>): (request: Request) => Promise<Response> {
  const { metrics, log } = opts
  return async (request) => {
    const started = performance.now()
    // Echo a caller's id so logs join up across a proxy; a malformed one is replaced (it lands in our logs).
    const given = request.headers.get('x-request-id')
    const reqId = given && REQUEST_ID_RE.test(given) ? given : randomUUID()
    const path = new URL(request.url).pathname
    let response: Response
    let own = true
    try {
      if (path === '/healthz' && request.method === 'GET') {
        const report = await opts.health()
        response = json(report.status === 'ok' ? 200 : 503, report)
      } else if (path === '/metrics' && request.method === 'GET') {
        const text = await metrics.registry.metrics()
        response = new Response(text, { status: 200, headers: { 'content-type': metrics.registry.contentType } })
      } else {
        const extra = path.startsWith(ROUTE_PREFIX) ? undefined : await opts.routes?.(request, path)
        if (extra) response = extra
        else if (opts.syncHandler) {
          own = false // the sync handler reports its own metrics through onResponse
          response = await opts.syncHandler(request)
        } else {
          response = json(404, { error: 'not found' })
        }
      }
    } catch (err) {
      log.error({ reqId, err: safeErrorFacts(err, false) }, 'request failed')
      response = json(500, { error: 'internal error' })
    }
    const durationMs = performance.now() - started
    if (own) metrics.observe({ route: path, method: request.method, status: response.status, durationMs })
    const headers = new Headers(response.headers)
    headers.set('x-request-id', reqId)
    const route = routeLabel(path)
    // Probes would drown the log at info level.
    const level =
      route === '/healthz' || route === '/metrics' || route === '/status.json'
        ? 'debug'
        : response.status >= 500
          ? 'warn'
          : 'info'
    log[level](
      { reqId, method: request.method, route, status: response.status, ms: Math.round(durationMs * 10) / 10 },
      'request',
    )
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers })
  }
}

/** Starts the HTTP server; resolves once it listens. */
export async function startServer(opts: DaemonServerOptions): Promise<DaemonServer> {
  const server = http.createServer(toNodeListener(daemonHandler(opts)))
  // Slowloris guard; sync bodies are small and clients retry.
  server.requestTimeout = 60_000
  server.headersTimeout = 20_000
  server.keepAliveTimeout = 65_000 // longer than typical load balancer idle timeouts (60 s), avoids 502s on reuse
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = `${opts.listen.host ?? ''}:${opts.listen.port}`
      if (err.code === 'EADDRINUSE') reject(new ConfigError(`LISTEN_ADDR ${where}: address already in use`))
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') {
        reject(new ConfigError(`LISTEN_ADDR ${where}: cannot listen on host "${opts.listen.host}" (${err.code})`))
      } else if (err.code === 'EACCES') reject(new ConfigError(`LISTEN_ADDR ${where}: permission denied`))
      else reject(err)
    }
    server.once('error', onError)
    server.listen(opts.listen.port, opts.listen.host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const addr = server.address() as AddressInfo
  const wildcard = opts.listen.host === undefined || opts.listen.host === '0.0.0.0' || opts.listen.host === '::'
  const host = wildcard ? 'localhost' : addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  return {
    url: `http://${host}:${addr.port}`,
    close: (timeoutMs) =>
      new Promise<void>((resolve) => {
        // close() stops accepting and resolves once every connection is gone; keep-alive connections become idle
        // after their in-flight response and are closed on the next sweep.
        const sweep = setInterval(() => server.closeIdleConnections(), 100)
        const force = setTimeout(() => {
          opts.log.warn({ timeoutMs }, 'shutdown timeout: closing connections with requests still in flight')
          server.closeAllConnections()
        }, timeoutMs)
        server.close(() => {
          clearInterval(sweep)
          clearTimeout(force)
          resolve()
        })
        server.closeIdleConnections()
      }),
  }
}
