/**
 * The tables a SELECT reads, found in its FROM clauses: `useQuery` re-runs when one of them changes. A name it
 * misses would leave the query stale, so a FROM clause of a form it does not understand makes it return every name
 * in the SQL instead (re-running too often is harmless; never re-running is not).
 */

interface Token {
  /** `name`: an identifier (`quoted` when written "x", `x` or [x]); `punct`: one character; `lit`: anything else. */
  kind: 'name' | 'punct' | 'lit'
  text: string
  quoted: boolean
}

// Whitespace and comments are dropped; strings and numbers are literals, so a FROM inside them is not one.
const TOKEN_RE =
  /\s+|--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)|('(?:[^']|'')*'?)|"((?:[^"]|"")*)"?|`((?:[^`]|``)*)`?|\[([^\]]*)\]?|([A-Za-z_\u0080-\uffff][\w$\u0080-\uffff]*)|(\d[\w.]*)|([\s\S])/g

function tokenize(sql: string): Token[] {
  const out: Token[] = []
  for (const m of sql.matchAll(TOKEN_RE)) {
    const quoted = m[2] ?? m[3] ?? m[4]
    if (quoted !== undefined) out.push({ kind: 'name', text: quoted.replace(/""|``/g, (q) => q[0]!), quoted: true })
    else if (m[5] !== undefined) out.push({ kind: 'name', text: m[5], quoted: false })
    else if (m[1] !== undefined || m[6] !== undefined) out.push({ kind: 'lit', text: m[0], quoted: false })
    else if (m[7] !== undefined) out.push({ kind: 'punct', text: m[7], quoted: false })
  }
  return out
}

const isKw = (t: Token | undefined, ...words: string[]): boolean =>
  t?.kind === 'name' && !t.quoted && words.includes(t.text.toUpperCase())
const isPunct = (t: Token | undefined, p: string): boolean => t?.kind === 'punct' && t.text === p

/** Keywords that end a FROM clause at its own level. */
const FROM_END = ['WHERE', 'GROUP', 'HAVING', 'WINDOW', 'ORDER', 'LIMIT', 'UNION', 'INTERSECT', 'EXCEPT', 'RETURNING']

/** The index just past the parenthesis that closes the one at `i`. */
function skipParens(toks: Token[], i: number): number {
  let depth = 0
  for (; i < toks.length; i++) {
    if (isPunct(toks[i], '(')) depth++
    else if (isPunct(toks[i], ')') && --depth === 0) return i + 1
  }
  return i
}

interface Found {
  tables: [number, string][]
  understood: boolean
}

/** Reads one FROM clause from `i` (after FROM, or inside a parenthesised join); returns where it ended. */
function fromClause(toks: Token[], i: number, found: Found): number {
  let itemNext = true
  while (i < toks.length) {
    const t = toks[i]!
    if (isPunct(t, ')') || isPunct(t, ';') || isKw(t, ...FROM_END)) return i
    if (isPunct(t, ',') || isKw(t, 'JOIN')) itemNext = true
    else if (itemNext) {
      itemNext = false
      i = item(toks, i, found)
      continue
    } else if (isPunct(t, '(')) {
      // ON or USING expressions: subqueries in them have their own FROM, read by `tablesOf`.
      i = skipParens(toks, i)
      continue
    }
    i++
  }
  return i
}

/** Reads the table (or subquery, or parenthesised join) at `i`; returns the index after it. */
function item(toks: Token[], i: number, found: Found): number {
  const t = toks[i]
  if (isPunct(t, '(')) {
    // A subquery is read by `tablesOf` from its own FROM; a parenthesised join is a FROM clause of its own.
    if (isKw(toks[i + 1], 'SELECT', 'WITH', 'VALUES')) return skipParens(toks, i)
    return fromClause(toks, i + 1, found) + 1
  }
  if (t?.kind !== 'name') {
    found.understood = false
    return i + 1
  }
  // schema.table: the table (main, temp or an attached database).
  const qualified = isPunct(toks[i + 1], '.') && toks[i + 2]?.kind === 'name'
  const end = qualified ? i + 3 : i + 1
  // name(...) is a table-valued function such as json_each, not a table.
  if (!isPunct(toks[end], '(')) found.tables.push([i, qualified ? toks[i + 2]!.text : t.text])
  return end
}

/**
 * The table names in the FROM clauses of `sql` (joins, comma lists, subqueries; `schema.table` gives the table), in
 * the order they appear. When a FROM clause has a form it does not understand: every name in the SQL.
 */
export function tablesOf(sql: string): string[] {
  const toks = tokenize(sql)
  const found: Found = { tables: [], understood: true }
  for (const [i, t] of toks.entries()) {
    // `a IS [NOT] DISTINCT FROM b` compares values; it is no FROM clause.
    if (isKw(t, 'FROM') && !isKw(toks[i - 1], 'DISTINCT')) fromClause(toks, i + 1, found)
  }
  if (!found.understood) return [...new Set(toks.filter((t) => t.kind === 'name').map((t) => t.text))]
  found.tables.sort((x, y) => x[0] - y[0])
  return [...new Set(found.tables.map(([, name]) => name))]
}
