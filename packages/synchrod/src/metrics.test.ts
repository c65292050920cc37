import { ROUTES } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import { KNOWN_ROUTES, routeLabel } from './metrics.js'

describe('route labels', () => {
  it('every protocol route, the live stream included, is its own label', () => {
    for (const { path } of Object.values(ROUTES)) expect(routeLabel(path)).toBe(path)
    expect(routeLabel('/sync/events')).toBe('/sync/events')
  })

  it('the daemon routes are labelled; any other path collapses to "other"', () => {
    for (const path of ['/healthz', '/metrics', '/status', '/status.json']) expect(routeLabel(path)).toBe(path)
    for (const path of ['/sync/nope', '/sync/events/x', '/', '/favicon.ico']) expect(routeLabel(path)).toBe('other')
    expect(KNOWN_ROUTES.size).toBe(Object.keys(ROUTES).length + 4)
  })
})
