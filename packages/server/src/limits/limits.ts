/**
 * Input limits (docs/configuration.md, "Limits"). Identities and register fields are stored in indexed text columns:
 * without a bound a long value fails the btree insert ("index row size exceeds maximum", HTTP 500) or fills the table
 * with megabytes of free text.
 */

/** `client_id`, `platform`, `app_version` and the user identity: at most this many characters. */
export const MAX_IDENTIFIER_LENGTH = 255
/** `client_name`: at most this many characters. */
export const MAX_FREE_TEXT_LENGTH = 1024
/** Default nesting limit of a pushed `data` object (the object itself is level 1). */
export const DEFAULT_MAX_JSON_DEPTH = 64
/** Default number of active clients one user may register. */
export const DEFAULT_MAX_CLIENTS_PER_USER = 100

/** A string PostgreSQL can store (no NUL) within `max` characters; undefined / null pass. */
export function fitsText(value: string | null | undefined, max: number): boolean {
  return value === undefined || value === null || (value.length <= max && !value.includes('\u0000'))
}

/**
 * True when `value` nests deeper than `max` levels (an object or array is one level more than its deepest child;
 * scalars are level 0). Iterative, so a hostile value cannot overflow the stack here, and it stops at the first path
 * that is too deep.
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]]
  for (;;) {
    const top = stack.pop()
    if (!top) return false
    const [v, depth] = top
    if (typeof v !== 'object' || v === null) continue
    if (depth + 1 > max) return true
    const children = Array.isArray(v) ? v : Object.values(v)
    for (const c of children) if (typeof c === 'object' && c !== null) stack.push([c, depth + 1])
  }
}
