/**
 * The HTTP surface of the protocol: every route with its method, and the header names both sides send or read.
 * Server handler, client transport and the daemon's metrics all take them from here, so a new route cannot be
 * known to one side only.
 */

/** Every `/sync` route by endpoint name, with the method it answers. */
export const ROUTES = {
  register: { method: 'POST', path: '/sync/register' },
  pull: { method: 'POST', path: '/sync/pull' },
  push: { method: 'POST', path: '/sync/push' },
  snapshot: { method: 'POST', path: '/sync/snapshot' },
  tables: { method: 'GET', path: '/sync/tables' },
  schema: { method: 'GET', path: '/sync/schema' },
  /** Extension: live change notifications (Server-Sent Events). */
  events: { method: 'GET', path: '/sync/events' },
} as const

/** Endpoint name of a route (`register`, `pull`, …, `events`). */
export type RouteName = keyof typeof ROUTES

/** Path prefix shared by every protocol route. */
export const ROUTE_PREFIX = '/sync/'

/** Header names of the protocol, lower case (HTTP header names are case-insensitive). */
export const HEADERS = {
  /** Bearer token of the caller (`Bearer <jwt>`). */
  authorization: 'authorization',
  /** Dev mode: the caller's user id, trusted as is (no authentication). */
  userId: 'x-user-id',
  /** The app's version, compared with the server's minimum (426 below it). */
  appVersion: 'x-app-version',
  /** Seconds to wait before retrying a 429 or 503. */
  retryAfter: 'retry-after',
  /** W3C trace context of the caller's span. */
  traceparent: 'traceparent',
} as const
