/**
 * `_synchro_pending_changes.written_columns` (local-only): the columns the queued entry's writes set, kept by the CDC
 * triggers as the union over its merged writes — an insert sets every column it gives a value other than NULL and the
 * column's default, an update every column it changes. A push sends the row's columns of the current schema whatever
 * was written; this is how it tells a write of a column the server has dropped or renamed since (still a local
 * column: migrations drop nothing), which it cannot push, from that column's old value (sync/unsynced-columns.ts).
 * NULL means not known (an entry of an earlier SDK version, or one a rebuild queued).
 *
 * Stored as JSON string tokens, each followed by a comma (`"note","total",`), in which a name's `"`, `,`, `\` and
 * control characters are `\u` escapes. So a `"` is only ever a token's delimiter and a closing one is always followed
 * by a comma, which no name starts with: `instr(written_columns, '"note"')` finds exactly the name `note`, and a
 * trigger keeps the union with one `instr` per changed column. (A union through `json_each` made a local update of
 * an already queued row about 50 % slower, 10 → 15 µs in better-sqlite3; this costs about 1 µs.)
 */
import { quoteIdent, quoteLiteral } from '../store/sql.js'
import type { SyncedTable } from './synced-table.js'

/** A local column the CDC triggers note when a write sets it, with its local DEFAULT (SQL text, as SQLite keeps it). */
export interface TrackedColumn {
  name: string
  dflt: string | null
}

/** `name` as a JSON string whose only `"` are its delimiters and which holds no `,`. */
export function nameToken(name: string): string {
  let s = '"'
  for (const ch of name) {
    const c = ch.codePointAt(0)!
    s += ch === '"' || ch === ',' || ch === '\\' || c < 0x20 ? `\\u${c.toString(16).padStart(4, '0')}` : ch
  }
  return `${s}"`
}

/** The columns a stored `written_columns` names; null when not known. */
export function parseWritten(text: string | null): string[] | null {
  if (text == null) return null
  try {
    const v: unknown = JSON.parse(`[${text.replace(/,$/, '')}]`)
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : null
  } catch {
    return null
  }
}

/** Per tracked column: the SQL condition under which the write sets it, and its token. */
function setters(t: SyncedTable, tracked: readonly TrackedColumn[], kind: 'insert' | 'update') {
  // The key and the sync stamps are part of every push: never to be reported on their own.
  const fixed = new Set([t.pk, t.updatedAt, t.deletedAt])
  return tracked
    .filter((c) => !fixed.has(c.name))
    .map((c) => {
      const col = `NEW.${quoteIdent(c.name)}`
      let set = `${col} IS NOT OLD.${quoteIdent(c.name)}`
      if (kind === 'insert') {
        set = c.dflt === null ? `${col} IS NOT NULL` : `${col} IS NOT NULL AND ${col} IS NOT (${c.dflt})`
      }
      return { set, token: nameToken(c.name) }
    })
}

/** `written_columns` of a new entry for the trigger's write. */
export function writtenSql(t: SyncedTable, tracked: readonly TrackedColumn[], kind: 'insert' | 'update'): string {
  const parts = setters(t, tracked, kind).map(
    (c) => `CASE WHEN ${c.set} THEN ${quoteLiteral(`${c.token},`)} ELSE '' END`,
  )
  return parts.length === 0 ? `''` : parts.join(' || ')
}

/** The upsert's SET item merging the trigger's write into a queued entry (unknown stays unknown). */
export function mergeWrittenSql(t: SyncedTable, tracked: readonly TrackedColumn[], kind: 'insert' | 'update'): string {
  const parts = setters(t, tracked, kind).map((c) => {
    const absent = `instr(written_columns, ${quoteLiteral(c.token)}) = 0`
    return `CASE WHEN ${c.set} AND ${absent} THEN ${quoteLiteral(`${c.token},`)} ELSE '' END`
  })
  return parts.length === 0
    ? 'written_columns = written_columns'
    : `written_columns = written_columns || ${parts.join(' || ')}`
}
