import type { SynchroClient } from '@synchro/client'
import { createContext, createElement, type ReactNode, useContext } from 'react'
import { statusStore } from './status-store.js'

const ClientContext = createContext<SynchroClient | null>(null)

export interface SynchroProviderProps {
  client: SynchroClient
  children?: ReactNode
}

/** Makes `client` available to the hooks below it. The provider neither starts nor closes the client. */
export function SynchroProvider({ client, children }: SynchroProviderProps): ReactNode {
  // Start watching the sync status now, so a cycle that completes before any useSyncStatus() mounts still counts.
  statusStore(client)
  return createElement(ClientContext.Provider, { value: client }, children)
}

/** The client of the nearest `<SynchroProvider>`; throws outside one (a missing provider is a wiring bug). */
export function useSynchroClient(): SynchroClient {
  const client = useContext(ClientContext)
  if (!client) throw new Error('useSynchroClient: no <SynchroProvider client={…}> above this component')
  return client
}
