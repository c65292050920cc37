import type pg from 'pg'
import type { Registry, ResolvedTable } from '../registry/registry.js'

/**
 * Types of the columns bucket resolution joins on (id, parent FK, deleted-at), read once from the catalog.
 * Joins compare `column = $value::<type>` rather than `column::text = $value` so PostgreSQL can use the indexes.
 */
export class ColumnCatalog {
  readonly #types = new Map<string, string | null>()

  /** Reads the types of every registered table's id, parent FK, bucket and deleted-at columns (one query). */
  static async load(db: pg.ClientBase | pg.Pool, registry: Registry): Promise<ColumnCatalog> {
    const tables: string[] = []
    const columns: string[] = []
    const names: string[] = []
    for (const t of registry.tables()) {
      for (const c of [t.idColumn, t.parentFkColumn, t.deletedAtColumn, t.bucketByColumn ?? t.ownerColumn]) {
        if (!c) continue
        tables.push(t.sqlName)
        columns.push(c)
        names.push(t.tableName)
      }
    }
    const { rows } = await db.query<{ i: string; type: string | null }>(
      `SELECT x.i::text AS i, format_type(a.atttypid, a.atttypmod) AS type
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(tbl, col, i)
         LEFT JOIN pg_attribute a
           ON a.attrelid = to_regclass(x.tbl) AND a.attname = x.col AND a.attnum > 0 AND NOT a.attisdropped`,
      [tables, columns],
    )
    const cat = new ColumnCatalog()
    for (const r of rows) {
      const i = Number(r.i) - 1
      cat.#types.set(key(names[i] as string, columns[i] as string), r.type)
    }
    return cat
  }

  /** The formatted type (`uuid`, `bigint`, …) or null when the column does not exist. */
  type(t: ResolvedTable, column: string): string | null {
    return this.#types.get(key(t.tableName, column)) ?? null
  }

  /** True when the table has the column (e.g. a deleted-at column is optional in practice). */
  has(t: ResolvedTable, column: string): boolean {
    return this.type(t, column) !== null
  }
}

function key(table: string, column: string): string {
  return `${table}\u0000${column}`
}
