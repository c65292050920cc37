import type pg from 'pg'
import type { ResolvedTable } from '../registry/registry.js'
import { memo } from '../util/memo.js'
import { quoteIdent } from '../util/sql.js'
import type { BucketResolver } from './resolver.js'

/** A record whose inherited buckets changed (e.g. an order whose owner changed) and what they are now. */
export interface RebucketRoot {
  table: ResolvedTable
  id: string
  buckets: string[]
}

/** A descendant row that must follow its root into `buckets` (Decision 15). */
export interface Descendant {
  table: ResolvedTable
  id: string
  /** Soft-deleted descendants have no edges and get none: they only follow once resurrected. */
  deleted: boolean
  /** Index into the roots array. */
  root: number
}

/** Child tables that take their buckets from `t` through the parent chain (not their own column or function). */
export function inheritingChildren(resolver: BucketResolver, t: ResolvedTable): readonly ResolvedTable[] {
  const byTable = memo(childrenCache, resolver, () => new Map<ResolvedTable, readonly ResolvedTable[]>())
  return memo(byTable, t, () =>
    resolver.registry.tables().filter((c) => c.parentTable === t.tableName && resolver.rule(c).kind === 'parent'),
  )
}

/** The registry is frozen once in use: children per table are computed once per resolver (once per update before). */
const childrenCache = new WeakMap<BucketResolver, Map<ResolvedTable, readonly ResolvedTable[]>>()

/**
 * Finds every descendant of the roots through the registry's child relations: one query per (level, child table),
 * each covering all parents of that level, so the cost does not grow with the number of roots.
 */
export async function findDescendants(
  db: pg.ClientBase,
  resolver: BucketResolver,
  roots: readonly RebucketRoot[],
): Promise<Descendant[]> {
  const out: Descendant[] = []
  // Frontier: per table, parent id → root indexes that reach it.
  let frontier = new Map<ResolvedTable, Map<string, number[]>>()
  for (const [i, r] of roots.entries()) addTo(frontier, r.table, r.id, i)
  for (let depth = 0; frontier.size > 0 && depth < 64; depth++) {
    const next = new Map<ResolvedTable, Map<string, number[]>>()
    for (const [parent, ids] of frontier) {
      for (const child of inheritingChildren(resolver, parent)) {
        const fk = child.parentFkColumn as string
        const fkType = resolver.catalog.type(child, fk) ?? 'text'
        const deleted = resolver.catalog.has(child, child.deletedAtColumn)
          ? `(c.${child.q.deletedAt} IS NOT NULL)`
          : 'false'
        const { rows } = await db.query<{ id: string; parent: string; deleted: boolean }>(
          `SELECT c.${child.q.id}::text AS id, c.${quoteIdent(fk)}::text AS parent, ${deleted} AS deleted
             FROM ${child.sqlName} c WHERE c.${quoteIdent(fk)} = ANY($1::${fkType}[])`,
          [[...ids.keys()]],
        )
        for (const r of rows) {
          for (const root of ids.get(r.parent) ?? []) {
            out.push({ table: child, id: r.id, deleted: r.deleted, root })
            addTo(next, child, r.id, root)
          }
        }
      }
    }
    frontier = next
  }
  return out
}

function addTo(m: Map<ResolvedTable, Map<string, number[]>>, t: ResolvedTable, id: string, root: number): void {
  let ids = m.get(t)
  if (!ids) {
    ids = new Map()
    m.set(t, ids)
  }
  const a = ids.get(id)
  if (a) a.push(root)
  else ids.set(id, [root])
}
