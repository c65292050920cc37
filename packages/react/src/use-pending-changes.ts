import { useMemo, useSyncExternalStore } from 'react'
import { useSynchroClient } from './provider.js'
import { externalStore } from './store.js'

/** A local change not yet accepted by the server (one per record: later writes merge into it). */
export interface PendingChange {
  tableName: string
  recordId: string
  operation: 'create' | 'update' | 'delete'
  /** When the change was made locally (RFC 3339). */
  clientUpdatedAt: string
}

export interface PendingChanges {
  count: number
  changes: PendingChange[]
}

// The SDK's queue table (one row per record with an unpushed change).
const QUEUE = '_synchro_pending_changes'
const SQL = `SELECT table_name AS tableName, record_id AS recordId, operation, client_updated_at AS clientUpdatedAt
  FROM ${QUEUE} ORDER BY client_updated_at, table_name, record_id`

const EMPTY: PendingChanges = { count: 0, changes: [] }

/** The queue of local changes waiting to be pushed, updated on every local write and every push. */
export function usePendingChanges(): PendingChanges {
  const client = useSynchroClient()
  const store = useMemo(
    () =>
      externalStore<PendingChanges>(EMPTY, (set) =>
        client.watch<PendingChange>(SQL, [], [QUEUE], (rows) => set({ count: rows.length, changes: rows })),
      ),
    [client],
  )
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
}
