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

/**
 * True when the JSON text `text` nests deeper than `max` levels — `nestedDeeperThan` of its parsed value, read from
 * the text: each `{` / `[` outside a string opens a level. Text with at most `max` brackets in all cannot be deeper,
 * which settles nearly every row after one cheap count. The count uses `indexOf` (a native scan): a `charCodeAt` loop
 * over every character measured ≈ 2.5 ms per 1 000 rows of 430 characters, `indexOf` ≈ 0.05 ms.
 */
export function jsonTextDeeperThan(text: string, max: number): boolean {
  const brackets = countUpTo(text, '{', max + 1)
  if (brackets + countUpTo(text, '[', max + 1 - brackets) > max) return deeperScan(text, max)
  return false
}

/** Occurrences of `c` in `text`, counting stops at `limit`. */
function countUpTo(text: string, c: string, limit: number): number {
  let n = 0
  for (let i = text.indexOf(c); i !== -1 && n < limit; i = text.indexOf(c, i + 1)) n++
  return n
}

function deeperScan(text: string, max: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}
