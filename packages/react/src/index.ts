export { SynchroProvider, type SynchroProviderProps, useSynchroClient } from './provider.js'
export { type PendingChange, type PendingChanges, usePendingChanges } from './use-pending-changes.js'
export { type QueryResult, type UseQueryOptions, useQuery } from './use-query.js'
export { type SyncState, useSyncStatus } from './use-sync-status.js'
