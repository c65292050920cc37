import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compareTimestamps, toRfc3339 } from './timestamps.js'

describe('timestamps compare as instants', () => {
  it('treats PostgreSQL, Go and SQLite renderings of one instant as equal', () => {
    expect(compareTimestamps('2026-11-26T00:40:02.555338+00:00', '2026-11-26T00:40:02.555338Z')).toBe(0)
    expect(compareTimestamps('2026-11-26T01:40:02.5553380+01:00', '2026-11-26T00:40:02.555338Z')).toBe(0)
    expect(compareTimestamps('2026-11-26 00:40:02', '2026-11-26T00:40:02Z')).toBe(0)
  })

  it('orders at microsecond precision where strings would mislead', () => {
    // As strings '…02.5Z' sorts after '…02.555338+00:00' ('Z' > '5'); as instants it is earlier.
    expect(compareTimestamps('2026-11-26T00:40:02.5Z', '2026-11-26T00:40:02.555338+00:00')).toBeLessThan(0)
    expect(compareTimestamps('2026-11-26T00:40:02.555339Z', '2026-11-26T00:40:02.555338+00:00')).toBeGreaterThan(0)
    // An offset moves the instant: 01:00+02:00 is before 00:00Z.
    expect(compareTimestamps('2026-11-26T01:00:00+02:00', '2026-11-26T00:00:00Z')).toBeLessThan(0)
  })

  it('agrees with numeric order for random µs instants in mixed renderings', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4_000_000_000_000_000 }),
        fc.integer({ min: 0, max: 4_000_000_000_000_000 }),
        (a, b) => {
          const pg = (us: number) =>
            `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}+00:00`
          const go = (us: number) => pg(us).replace('+00:00', 'Z')
          expect(Math.sign(compareTimestamps(pg(a), go(b)))).toBe(Math.sign(a - b))
        },
      ),
    )
  })

  it('converts SQLite CURRENT_TIMESTAMP text to RFC 3339', () => {
    expect(toRfc3339('2026-11-26 00:40:02')).toBe('2026-11-26T00:40:02Z')
    expect(toRfc3339('2026-11-26T00:40:02+00:00')).toBe('2026-11-26T00:40:02+00:00')
  })
})
