/**
 * SQL expression rendering a timestamptz as RFC 3339 UTC with microseconds (`…T12:00:00.123456Z`).
 * Pass the result through `trimRfc3339` to drop trailing zeros as the wire format wants (§1.6).
 */
export function sqlRfc3339(expr: string): string {
  return `to_char((${expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
}

/**
 * `sqlRfc3339` for the timestamps of pull pages, read by the thousand: the timestamp in UTC as its JSON text
 * (`"2026-01-02T03:04:05.12"`: fraction already trimmed; `… BC`, `"infinity"` as PostgreSQL writes them), at about
 * half of `to_char`'s cost (a pull page's `updated_at`: 1.3 ms of backend CPU per 1 000 rows). `rfc3339FromJson`
 * turns it into exactly what `trimRfc3339` makes of `sqlRfc3339`'s text. Independent of DateStyle, as JSON output is.
 */
export function sqlRfc3339Json(expr: string): string {
  return `to_json((${expr}) AT TIME ZONE 'UTC')::text`
}

/**
 * The text of `sqlRfc3339Json` as `trimRfc3339(sqlRfc3339)` renders it: `to_char` writes no era (BC years as their
 * digits) and nothing for an infinite timestamp (undefined here).
 */
export function rfc3339FromJson(text: string | null | undefined): string | undefined {
  if (text == null || text === '"infinity"' || text === '"-infinity"') return undefined
  const s = text.slice(1, -1)
  return `${s.endsWith(' BC') ? s.slice(0, -3) : s}Z`
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
