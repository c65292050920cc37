import type { Rejection } from '@synchro/client'
import { useCallback, useMemo, useSyncExternalStore } from 'react'
import { useSynchroClient } from './provider.js'
import { externalStore } from './store.js'

export interface Rejections {
  /** Writes the server did not apply, oldest first (durable: they survive restarts until cleared). */
  rejections: Rejection[]
  /** Dismisses the given rejections (by `id`), or all of them. */
  clear: (ids?: readonly number[]) => Promise<void>
}

const NONE: Rejection[] = []

/** The client's rejected writes, re-read whenever the list changes (a new rejection, or a clear). */
export function useRejections(): Rejections {
  const client = useSynchroClient()
  const store = useMemo(
    () =>
      externalStore<Rejection[]>(NONE, (set) => {
        let stopped = false
        let reads = 0
        const read = () => {
          // Only the newest read may land: an older, slower one must not overwrite it.
          const n = ++reads
          client.rejections().then(
            (list) => {
              if (!stopped && n === reads) set(list)
            },
            () => {},
          )
        }
        const unsubscribe = client.onRejectionsChange(read)
        read()
        return () => {
          stopped = true
          unsubscribe()
        }
      }),
    [client],
  )
  const rejections = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  const clear = useCallback((ids?: readonly number[]) => client.clearRejections(ids), [client])
  return { rejections, clear }
}
