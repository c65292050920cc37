import type { StatusEvent, SynchroClient, SynchroError, SyncProgress, SyncStatus } from '@synchro/client'
import type { ExternalStore } from './store.js'

export interface SyncState {
  /** The client's sync state machine: idle, connecting, syncing, error or stopped. */
  status: SyncStatus
  /** False after a request failed for want of a network, true again once one reaches the server (even if it fails there). */
  online: boolean
  /** True while connecting or running a sync cycle. */
  syncing: boolean
  /** When a sync cycle last completed (null until one has while this client was observed). */
  lastSyncedAt: Date | null
  /** The failure behind an `error` status. */
  error: SynchroError | null
  /** When the next automatic retry runs after an error. */
  retryAt: Date | null
  /** Snapshot or pull progress while syncing. */
  progress: SyncProgress | null
}

/** Error codes that come from a server's answer (an HTTP response, even a failing one), not from its absence. */
const ANSWERED: ReadonlySet<string> = new Set([
  'SERVER_ERROR',
  'UPGRADE_REQUIRED',
  'SCHEMA_MISMATCH',
  'SNAPSHOT_REQUIRED',
  'PUSH_REJECTED',
  'INVALID_RESPONSE',
])

/** No answer → offline; any answer (a completed cycle, progress, an HTTP error) → online; else unchanged. */
function isOnline(prev: SyncState | null, e: StatusEvent): boolean {
  const code = e.status === 'error' ? e.error?.code : undefined
  if (code === 'NETWORK_ERROR') return false
  if (e.status === 'idle' || (e.status === 'syncing' && e.progress !== undefined)) return true
  if (code !== undefined && ANSWERED.has(code)) return true
  return prev?.online ?? true
}

function next(prev: SyncState | null, e: StatusEvent, now: Date): SyncState {
  return {
    status: e.status,
    online: isOnline(prev, e),
    syncing: e.status === 'syncing' || e.status === 'connecting',
    // `idle` is only ever entered after a cycle completed.
    lastSyncedAt: e.status === 'idle' && prev?.status !== 'idle' ? now : (prev?.lastSyncedAt ?? null),
    error: e.error ?? null,
    retryAt: e.retryAt,
    progress: e.progress ?? null,
  }
}

// One store per client, alive as long as the client: it keeps listening so `lastSyncedAt` is not lost between renders.
const stores = new WeakMap<SynchroClient, ExternalStore<SyncState>>()

/** The client's status store; created by `<SynchroProvider>` so it observes from the moment the app mounts. */
export function statusStore(client: SynchroClient): ExternalStore<SyncState> {
  let store = stores.get(client)
  if (!store) {
    // Whether a cycle completed before this store existed is unknown: lastSyncedAt starts null.
    let state: SyncState = { ...next(null, client.status, new Date()), lastSyncedAt: null }
    const listeners = new Set<() => void>()
    client.onStatusChange((e) => {
      state = next(state, e, new Date())
      for (const l of [...listeners]) l()
    })
    store = {
      subscribe(onChange) {
        listeners.add(onChange)
        return () => listeners.delete(onChange)
      },
      getSnapshot: () => state,
    }
    stores.set(client, store)
  }
  return store
}
