import { describe, expect, it } from 'vitest'
import { RequestStats } from './request-stats.js'

describe('RequestStats', () => {
  it('gives per-route rates over the last minute, latency percentiles and 5xx counts', () => {
    let now = 1_000_000
    const s = new RequestStats(() => now)
    for (let i = 1; i <= 100; i++) s.record('/sync/pull', i, i === 100 ? 503 : 200)
    s.record('/sync/push', 7, 200)
    now += 61_000 // the push falls out of the window; its total stays
    s.record('/sync/pull', 1000, 200)
    const [pull, push] = s.routes()
    expect(push).toEqual({ route: '/sync/push', perSecond: 0, total: 1, p50Ms: null, p95Ms: null, errors: 0 })
    expect(pull).toMatchObject({ route: '/sync/pull', total: 101, perSecond: 0.02, p50Ms: 1000, errors: 0 })
  })

  it('percentiles over the window', () => {
    const now = 5_000
    const s = new RequestStats(() => now)
    for (let i = 1; i <= 100; i++) s.record('/r', i, i > 98 ? 500 : 200)
    expect(s.routes()[0]).toMatchObject({ p50Ms: 51, p95Ms: 96, errors: 2, perSecond: 1.67 })
  })

  it('history points carry the request rate since the previous point and the lag noted since', () => {
    let now = 0
    const s = new RequestStats(() => now)
    for (let i = 0; i < 10; i++) s.record('/r', 1, 200)
    now = 2_000
    s.noteLag(4096)
    s.tick()
    now = 4_000
    s.tick()
    now = 10_000
    s.tick()
    expect(s.history()).toEqual([
      { t: 2_000, requestsPerSecond: 5, lagBytes: 4096 },
      // The lag reading is still fresh (5 s), then it is not repeated as if measured.
      { t: 4_000, requestsPerSecond: 0, lagBytes: 4096 },
      { t: 10_000, requestsPerSecond: 0, lagBytes: null },
    ])
  })
})
