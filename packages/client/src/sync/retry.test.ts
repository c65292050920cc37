import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { NetworkError, ServerError, UpgradeRequiredError } from '../errors.js'
import { recordRetryDelayMs } from './push.js'
import { backoffDelayMs, withRetry } from './retry.js'
import { parseRetryAfter } from './transport.js'

describe('backoff delays (§4.4)', () => {
  it('uses bases 1, 2, 4, 8, 16, 16… seconds with 0–50 % jitter', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (retry, r) => {
        const base = Math.min(2 ** (retry - 1), 16) * 1000
        const d = backoffDelayMs(retry, 0, () => r)
        expect(d).toBeGreaterThanOrEqual(base)
        expect(d).toBeLessThanOrEqual(base * 1.5)
      }),
    )
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n, 0, () => 0))).toEqual([1000, 2000, 4000, 8000, 16000, 16000])
    expect(backoffDelayMs(3, 0, () => 0.5)).toBe(5000)
  })

  it('honours Retry-After (decimals allowed) instead of the exponential base', () => {
    expect(backoffDelayMs(1, 7, () => 0.9)).toBe(7000)
    expect(backoffDelayMs(5, 0.25, () => 0.9)).toBe(250)
    expect(parseRetryAfter('2.5', null)).toBe(2.5)
    expect(parseRetryAfter(null, { retry_after: 10 })).toBe(10)
    expect(parseRetryAfter('garbage', {})).toBe(0)
  })
})

describe('withRetry', () => {
  function harness() {
    const sleeps: number[] = []
    return { sleeps, sleep: async (ms: number) => void sleeps.push(ms) }
  }

  it('retries retryable failures maxRetryAttempts times and never sleeps after the final attempt', async () => {
    const h = harness()
    let calls = 0
    await expect(
      withRetry(
        async () => {
          calls++
          throw new NetworkError('down')
        },
        { maxRetryAttempts: 5, random: () => 0, sleep: h.sleep },
      ),
    ).rejects.toBeInstanceOf(NetworkError)
    expect(calls).toBe(6)
    expect(h.sleeps).toEqual([1000, 2000, 4000, 8000, 16000])
  })

  it('uses the server Retry-After for 429/503', async () => {
    const h = harness()
    let calls = 0
    const out = await withRetry(
      async () => {
        if (++calls < 3) throw new ServerError(503, 'busy', 3)
        return 'ok'
      },
      { maxRetryAttempts: 5, random: () => 0.3, sleep: h.sleep },
    )
    expect(out).toBe('ok')
    expect(h.sleeps).toEqual([3000, 3000])
  })

  it('does not retry non-retryable failures (401, 426, 500)', async () => {
    for (const err of [new ServerError(401, 'x'), new UpgradeRequiredError('1.0.0'), new ServerError(500, 'x')]) {
      const h = harness()
      let calls = 0
      await expect(
        withRetry(
          async () => {
            calls++
            throw err
          },
          { maxRetryAttempts: 5, random: () => 0, sleep: h.sleep },
        ),
      ).rejects.toBe(err)
      expect(calls).toBe(1)
      expect(h.sleeps).toEqual([])
    }
  })

  it('with maxRetryAttempts 0 tries once and does not sleep', async () => {
    const h = harness()
    await expect(
      withRetry(
        async () => {
          throw new NetworkError('x')
        },
        { maxRetryAttempts: 0, random: () => 0, sleep: h.sleep },
      ),
    ).rejects.toBeInstanceOf(NetworkError)
    expect(h.sleeps).toEqual([])
  })
})

describe('per-record push retry delays', () => {
  it('doubles from 1 s and is capped at 60 s', () => {
    expect([1, 2, 3, 6, 7, 8, 50].map(recordRetryDelayMs)).toEqual([1000, 2000, 4000, 32_000, 60_000, 60_000, 60_000])
  })
})
