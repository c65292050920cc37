/**
 * Parses an RFC 3339 timestamp (or PostgreSQL's JSON rendering `2026-01-02T03:04:05.123456+00:00`) into
 * nanoseconds since the epoch as a bigint, so µs (and ns) precision survives — never through `Date` (Decision 2).
 */
export function toEpochNanos(ts: string): bigint {
  const m =
    /^(\d{4,})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2})?)$/.exec(
      ts.trim(),
    )
  if (!m) throw new RangeError(`not an RFC 3339 timestamp: ${JSON.stringify(ts)}`)
  const [, y, mo, d, h, mi, s, frac, z, sign, oh, om] = m
  const days = daysFromCivil(Number(y), Number(mo), Number(d))
  let secs = BigInt(days) * 86400n + BigInt(Number(h) * 3600 + Number(mi) * 60 + Number(s))
  if (!z && sign) {
    const off = BigInt(Number(oh) * 3600 + Number(om ?? '0') * 60)
    secs = sign === '+' ? secs - off : secs + off
  }
  const nanos = BigInt((frac ?? '').padEnd(9, '0'))
  return secs * 1_000_000_000n + nanos
}

/** Days since 1970-01-01 of a proleptic Gregorian date (works for year 1 too, unlike Date). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y
  const era = Math.floor(yy / 400)
  const yoe = yy - era * 400
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

/** Compares two timestamps at full precision: negative, zero or positive. */
export function compareInstants(a: string, b: string): number {
  const x = toEpochNanos(a)
  const y = toEpochNanos(b)
  return x < y ? -1 : x > y ? 1 : 0
}
