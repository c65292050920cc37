/** Quotes an SQLite identifier. Every table/column name that reaches SQL goes through here. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** Quotes an SQL string literal (used only in DDL, where SQLite does not accept parameters). */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`
}
