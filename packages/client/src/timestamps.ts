/**
 * Timestamp handling. Server data carries PostgreSQL's JSON rendering (`2026-11-26T00:40:02.555338+00:00`), push
 * results carry Go's RFC 3339 (`…555338Z`), SQLite defaults produce `2026-11-26 00:40:02`. They must be compared
 * as instants, at full (µs, up to ns) precision — never through `Date`, which keeps only milliseconds.
 */

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$/

/** An instant: whole seconds since the epoch and nanoseconds within the second. */
export interface Instant {
  seconds: number
  nanos: number
}

/** Parses a timestamp as written by PostgreSQL, Go or SQLite. No zone means UTC (SQLite's CURRENT_TIMESTAMP). */
export function parseInstant(ts: string): Instant | null {
  const m = TS_RE.exec(ts)
  if (!m) return null
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))
  if (Number.isNaN(ms)) return null
  let seconds = ms / 1000
  if (m[9] !== undefined) {
    const offset = (Number(m[10]) * 60 + Number(m[11])) * 60
    seconds += m[9] === '+' ? -offset : offset
  }
  const frac = m[7]
  const nanos = frac === undefined ? 0 : Number(frac.padEnd(9, '0'))
  return { seconds, nanos }
}

/**
 * Compares two timestamps as instants: negative when a < b, 0 when equal, positive when a > b.
 * Unparseable values sort before everything (they never win a read-your-own-writes check).
 */
export function compareTimestamps(a: string, b: string): number {
  if (a === b) return 0
  const x = parseInstant(a)
  const y = parseInstant(b)
  if (x === null || y === null) return x === null ? (y === null ? 0 : -1) : 1
  if (x.seconds !== y.seconds) return x.seconds - y.seconds
  return x.nanos - y.nanos
}

/** Current time as RFC 3339 with milliseconds and `Z` (same shape as the CDC triggers' strftime). */
export function nowRfc3339(nowMs: number): string {
  return new Date(nowMs).toISOString()
}

const SQLITE_TS_RE = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)$/

/**
 * Turns a timestamp into RFC 3339 when it is in SQLite's zone-less `YYYY-MM-DD HH:MM:SS[.fff]` form (UTC), so the
 * server's RFC 3339 validator accepts it; other strings are returned unchanged.
 */
export function toRfc3339(ts: string): string {
  const m = SQLITE_TS_RE.exec(ts)
  return m ? `${m[1]}T${m[2]}Z` : ts
}

/** True when the server accepts `ts` as a timestamp (RFC 3339, `Z` or numeric offset). */
export function isRfc3339(ts: string): boolean {
  return (
    /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/.test(ts) && parseInstant(ts) !== null
  )
}
