/**
 * Splits a script of `;`-separated SQL statements, for drivers whose engine prepares one statement at a time. A `;`
 * ends a statement unless it is inside a quoted string or identifier, a comment, or the body of a CREATE TRIGGER
 * (which ends at an `END;` right after a body statement's `;`, the rule of SQLite's own sqlite3_complete).
 */
export function splitStatements(script: string): string[] {
  const out: string[] = []
  let start = 0
  let i = 0
  const n = script.length
  while (i < n) {
    const c = script[i]!
    if (c === "'" || c === '"' || c === '`') {
      const end = script.indexOf(c, i + 1)
      i = end < 0 ? n : end + 1
      // A doubled quote is an escaped one: the scan continues at the second quote as a new opening.
      continue
    }
    if (c === '[') {
      const end = script.indexOf(']', i + 1)
      i = end < 0 ? n : end + 1
      continue
    }
    if (c === '-' && script[i + 1] === '-') {
      const end = script.indexOf('\n', i + 2)
      i = end < 0 ? n : end + 1
      continue
    }
    if (c === '/' && script[i + 1] === '*') {
      const end = script.indexOf('*/', i + 2)
      i = end < 0 ? n : end + 2
      continue
    }
    if (c === ';') {
      const stmt = script.slice(start, i)
      if (!isOpenTrigger(stmt)) {
        if (hasCode(stmt)) out.push(stmt.trim())
        start = i + 1
      }
    }
    i++
  }
  const rest = script.slice(start)
  if (hasCode(rest)) out.push(rest.trim())
  return out
}

/** Without comments and quoted text, upper-cased: what the keyword checks look at. */
function words(stmt: string): string {
  return stmt
    .replace(/--[^\n]*|\/\*[\s\S]*?\*\//g, ' ')
    .replace(/'[^']*'|"[^"]*"|`[^`]*`|\[[^\]]*\]/g, ' x ')
    .toUpperCase()
}

function isOpenTrigger(stmt: string): boolean {
  const w = words(stmt)
  if (!/^\s*CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TRIGGER\b/.test(w)) return false
  // Closed by an END that starts a body statement (`…; END`), so a `CASE … END;` inside the body is not the end.
  return !/;\s*END\s*$/.test(w)
}

function hasCode(stmt: string): boolean {
  return words(stmt).trim() !== ''
}
