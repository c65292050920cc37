import { useSyncExternalStore } from 'react'
import { useSynchroClient } from './provider.js'
import { type SyncState, statusStore } from './status-store.js'

export type { SyncState }

/** The client's sync state, re-rendering on every status change. */
export function useSyncStatus(): SyncState {
  const store = statusStore(useSynchroClient())
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
}
