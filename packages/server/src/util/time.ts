/**
 * SQL expression rendering a timestamptz as RFC 3339 UTC with microseconds (`…T12:00:00.123456Z`).
 * Pass the result through `trimRfc3339` to drop trailing zeros as the wire format wants (§1.6).
 */
export function sqlRfc3339(expr: string): string {
  return `to_char((${expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
}

/** Drops trailing fractional zeros (and a bare '.') from an RFC 3339 timestamp. */
export function trimRfc3339(ts: string): string
export function trimRfc3339(ts: string | null | undefined): string | undefined
export function trimRfc3339(ts: string | null | undefined): string | undefined {
  if (ts == null) return undefined
  return ts.replace(/\.(\d*?)0+Z$/, (_m, d: string) => (d ? `.${d}Z` : 'Z'))
}

/** Server time now, RFC 3339 UTC. */
export function nowRfc3339(): string {
  return trimRfc3339(new Date().toISOString())
}
