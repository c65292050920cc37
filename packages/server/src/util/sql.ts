import { createHash } from 'node:crypto'
/**
 * The name a generated statement is `PREPARE`d under: `prefix` and a digest of its text, so the same text gets the
 * same name on every connection and different texts never share one.
 */
export function preparedName(prefix: string, text: string): string {
  return `${prefix}_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`
}

/** Quotes one SQL identifier ("a""b"). Every table/column name that reaches SQL passes through here. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error('identifier contains NUL')
  return `"${name.replaceAll('"', '""')}"`
}

/** Quotes a possibly schema-qualified table name: `app.orders` → `"app"."orders"`. */
export function quoteTable(name: string): string {
  const dot = name.indexOf('.')
  if (dot < 0) return quoteIdent(name)
  return `${quoteIdent(name.slice(0, dot))}.${quoteIdent(name.slice(dot + 1))}`
}

/** Quotes a SQL string literal (for generated DDL that is printed, never for request values). */
export function quoteLiteral(s: string): string {
  return `'${s.replaceAll("'", "''")}'`
}
