/**
 * `/status` (HTML) and `/status.json` on the daemon: the report of `synchrod status --json` (same function, same
 * numbers) plus this process's request rates, latency, live streams and a short history for the charts.
 *
 * Access: with an admin token configured, only callers presenting it (`Authorization: Bearer …`, or `?token=` for
 * the page itself); without one, only in dev header mode, where anyone may act as anyone anyway. With JWT auth and
 * no admin token the page is off (403): status data never goes out unauthenticated from a production setup.
 */
import { timingSafeEqual } from 'node:crypto'
import type { WalConsumerStatus } from '@synchro/server'
import type { StatusReport } from '../commands/status.js'
import { STATUS_PAGE_HTML } from './page.js'
import type { HistoryPoint, RequestStats, RouteStats } from './request-stats.js'

export interface StatusSnapshot {
  /** Exactly what `synchrod status --json` prints for this database. */
  report: StatusReport
  /** This process only (each instance of a scale-out deployment has its own). */
  process: {
    routes: RouteStats[]
    liveStreams: number
    consumer: WalConsumerStatus | null
    uptimeSeconds: number
  }
  history: HistoryPoint[]
  generatedAt: string
}

export interface StatusPageOptions {
  readReport: () => Promise<StatusReport>
  stats: RequestStats
  liveStreams: () => number
  consumer: () => WalConsumerStatus | null
  /** ADMIN_TOKEN; when unset the page is served only in dev header mode. */
  adminToken: string | undefined
  devHeaderAuth: boolean
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  })
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  // The token may be in the URL: keep it out of Referer headers; the page needs nothing from other origins.
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
  'x-frame-options': 'DENY',
}

/** Answers `/status` and `/status.json`; anything else is `undefined` (not ours). */
export function statusPageRoutes(
  opts: StatusPageOptions,
): (request: Request, path: string) => Promise<Response | undefined> {
  const started = Date.now()
  const allowed = (request: Request, url: URL): Response | null => {
    if (opts.adminToken) {
      const auth = request.headers.get('authorization') ?? ''
      const given = auth.startsWith('Bearer ') ? auth.slice(7) : (url.searchParams.get('token') ?? '')
      return given !== '' && sameSecret(given, opts.adminToken) ? null : json(401, { error: 'admin token required' })
    }
    if (opts.devHeaderAuth) return null
    return json(403, { error: 'the status page is off: set ADMIN_TOKEN to enable it' })
  }
  return async (request, path) => {
    if (path !== '/status' && path !== '/status.json') return undefined
    if (request.method !== 'GET') return json(405, { error: 'method not allowed' })
    const denied = allowed(request, new URL(request.url))
    if (denied) return denied
    if (path === '/status') return new Response(STATUS_PAGE_HTML, { status: 200, headers: PAGE_HEADERS })
    const report = await opts.readReport()
    opts.stats.noteLag(report.slot.lagBytes)
    const body: StatusSnapshot = {
      report,
      process: {
        routes: opts.stats.routes(),
        liveStreams: opts.liveStreams(),
        consumer: opts.consumer(),
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
      },
      history: opts.stats.history(),
      generatedAt: new Date().toISOString(),
    }
    return json(200, body)
  }
}
