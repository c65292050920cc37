import type { Row, SqlParam } from '@synchro/client'
import { useMemo, useSyncExternalStore } from 'react'
import { useSynchroClient } from './provider.js'
import { externalStore } from './store.js'
import { tablesOf } from './tables-of.js'

export interface UseQueryOptions {
  /**
   * Tables whose changes re-run the query (local writes and pulled changes alike). Default: the tables in the FROM clauses
   * of `sql` (joins, comma lists, subqueries) — name them here when the query reads through a view.
   */
  tables?: readonly string[]
}

export interface QueryResult<T> {
  /** The latest rows (`[]` until the first run finishes). */
  data: T[]
  /** True until the first run for this query and these parameters has finished. */
  isLoading: boolean
  /** The failure of the latest run, if it failed (`data` then keeps the rows of the last good run). */
  error: Error | null
}

const LOADING: QueryResult<never> = { data: [], isLoading: true, error: null }

/**
 * Runs `sql` against the local database and re-runs it whenever one of `tables` changes.
 *
 * @example
 * const { data: orders } = useQuery<Order>('SELECT * FROM orders WHERE deleted_at IS NULL ORDER BY order_date DESC')
 */
export function useQuery<T = Row>(
  sql: string,
  params: readonly SqlParam[] = [],
  options: UseQueryOptions = {},
): QueryResult<T> {
  const client = useSynchroClient()
  // Parameters and tables are compared by value: callers pass fresh arrays on every render.
  const paramsKey = JSON.stringify(params, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))
  const tables = options.tables ?? tablesOf(sql)
  const tablesKey = tables.join('\u0000')
  // biome-ignore lint/correctness/useExhaustiveDependencies: params and tables are keyed by value above
  const store = useMemo(
    () =>
      externalStore<QueryResult<T>>(LOADING, (set, get) =>
        client.watch<T>(
          sql,
          params,
          tables,
          (rows) => set({ data: rows, isLoading: false, error: null }),
          (err) =>
            set({ data: get().data, isLoading: false, error: err instanceof Error ? err : new Error(String(err)) }),
        ),
      ),
    [client, sql, paramsKey, tablesKey],
  )
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
}
