import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ConfigurationError } from '../errors.js'
import { lastWriteWins, serverWins } from './lww.js'
import type { ConflictInput } from './types.js'

const NS = 1_000_000_000n
// 1970-01-01 .. 2100-01-01 in µs, as nanoseconds (the database keeps µs).
const instant = fc.bigInt({ min: 0n, max: 4_102_444_800_000_000n }).map((us) => us * 1000n)
const offsetMinutes = fc.constantFrom(0, 60, -300, 330, 840, -720)

/** RFC 3339 text of an epoch-ns instant, written at a UTC offset with 6 or 9 fraction digits (or none). */
function rfc(ns: bigint, offset = 0, digits: 0 | 6 | 9 = 6): string {
  const local = ns + BigInt(offset) * 60n * NS
  // Floor division: bigint `/` truncates toward zero, which would garble instants before 1970.
  const rem = ((local % NS) + NS) % NS
  const secs = (local - rem) / NS
  const frac = rem.toString().padStart(9, '0')
  const base = new Date(Number(secs) * 1000).toISOString().slice(0, 19)
  const fraction = digits === 0 ? '' : `.${frac.slice(0, digits)}`
  if (offset === 0) return `${base}${fraction}Z`
  const sign = offset < 0 ? '-' : '+'
  const a = Math.abs(offset)
  return `${base}${fraction}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`
}

function input(server: bigint, client: bigint, base?: bigint, offsets: [number, number, number] = [0, 0, 0]) {
  return {
    table: 'orders',
    recordId: 'r',
    operation: 'update',
    userId: 'u',
    serverUpdatedAt: rfc(server, offsets[0], 6),
    clientUpdatedAt: rfc(client, offsets[1], 9),
    baseUpdatedAt: base === undefined ? undefined : rfc(base, offsets[2], 6),
    clientData: {},
    serverData: {},
  } satisfies ConflictInput
}

const tolerance = fc.integer({ min: 0, max: 10_000 })
const offsets = fc.tuple(offsetMinutes, offsetMinutes, offsetMinutes)

describe('lastWriteWins (§3 G)', () => {
  it('no base: the client wins iff client + T is strictly after the server stamp (ties → server)', () => {
    fc.assert(
      fc.property(instant, instant, tolerance, offsets, (server, client, t, off) => {
        const d = lastWriteWins({ clockSkewToleranceMs: t }).resolve(input(server, client, undefined, off))
        const wins = client + BigInt(t) * 1_000_000n > server
        expect(d).toEqual(
          wins
            ? { winner: 'client', reason: expect.any(String) }
            : { winner: 'server', reason: 'server version is newer' },
        )
      }),
    )
  })

  it('exact ties go to the server, one µs later goes to the client', () => {
    fc.assert(
      fc.property(instant, tolerance, (server, t) => {
        const lww = lastWriteWins({ clockSkewToleranceMs: t })
        const tie = server - BigInt(t) * 1_000_000n
        expect(lww.resolve(input(server, tie))).toMatchObject({ winner: 'server' })
        expect(lww.resolve(input(server, tie + 1000n))).toMatchObject({ winner: 'client' })
      }),
    )
  })

  it('base equal to the server stamp (whatever its offset/precision) → the client wins at any client time', () => {
    fc.assert(
      fc.property(instant, instant, tolerance, offsets, (server, client, t, off) => {
        const d = lastWriteWins({ clockSkewToleranceMs: t }).resolve(input(server, client, server, off))
        expect(d.winner).toBe('client')
      }),
    )
  })

  it('base ahead of the server → server wins with "client base version is ahead of server version"', () => {
    fc.assert(
      fc.property(
        instant,
        instant,
        fc.bigInt({ min: 1n, max: 10n ** 15n }),
        tolerance,
        offsets,
        (server, client, ahead, t, off) => {
          const d = lastWriteWins({ clockSkewToleranceMs: t }).resolve(
            input(server, client, server + ahead * 1000n, off),
          )
          expect(d).toEqual({ winner: 'server', reason: 'client base version is ahead of server version' })
        },
      ),
    )
  })

  it('base older than the server → exactly the rule without a base', () => {
    fc.assert(
      fc.property(
        instant,
        instant,
        fc.bigInt({ min: 1n, max: 10n ** 15n }),
        tolerance,
        offsets,
        (server, client, behind, t, off) => {
          const lww = lastWriteWins({ clockSkewToleranceMs: t })
          const withBase = lww.resolve(input(server, client, server - behind * 1000n, off))
          const without = lww.resolve(input(server, client, undefined, off))
          expect(withBase.winner).toBe(without.winner)
          if (withBase.winner === 'server') expect(withBase.reason).toBe('server version is newer')
        },
      ),
    )
  })

  it('monotonic: a later client time never turns a win into a loss', () => {
    fc.assert(
      fc.property(instant, instant, fc.bigInt({ min: 0n, max: 10n ** 12n }), tolerance, (server, client, later, t) => {
        const lww = lastWriteWins({ clockSkewToleranceMs: t })
        if (lww.resolve(input(server, client)).winner === 'client') {
          expect(lww.resolve(input(server, client + later * 1000n)).winner).toBe('client')
        }
      }),
    )
  })

  it('nanosecond digits count: 1 ns after the server stamp wins with T = 0', () => {
    const lww = lastWriteWins()
    const base = {
      ...input(0n, 0n),
      serverUpdatedAt: '2026-01-01T00:00:00.123456Z',
    }
    expect(lww.resolve({ ...base, clientUpdatedAt: '2026-01-01T00:00:00.123456001Z' }).winner).toBe('client')
    expect(lww.resolve({ ...base, clientUpdatedAt: '2026-01-01T00:00:00.123456000Z' }).winner).toBe('server')
    expect(lww.resolve({ ...base, clientUpdatedAt: '2026-01-01T01:00:00.123456+01:00' }).winner).toBe('server')
  })

  it('the zero time (absent client_updated_at) loses against any stored stamp', () => {
    const d = lastWriteWins({ clockSkewToleranceMs: 10_000 }).resolve({
      ...input(0n, 0n),
      serverUpdatedAt: '0001-01-01T00:00:10.000001Z',
      clientUpdatedAt: '0001-01-01T00:00:00Z',
    })
    expect(d).toEqual({ winner: 'server', reason: 'server version is newer' })
  })

  it('refuses a negative or non-finite tolerance', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => lastWriteWins({ clockSkewToleranceMs: bad })).toThrow(ConfigurationError)
    }
  })
})

describe('serverWins', () => {
  it('always picks the server with "server always wins"', () => {
    fc.assert(
      fc.property(instant, instant, fc.option(instant, { nil: undefined }), (server, client, base) => {
        expect(serverWins().resolve(input(server, client, base))).toEqual({
          winner: 'server',
          reason: 'server always wins',
        })
      }),
    )
  })
})
