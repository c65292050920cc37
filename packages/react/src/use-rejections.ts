import type { SynchroClient } from '@synchro/client'
import { useCallback, useMemo, useSyncExternalStore } from 'react'
import { useSynchroClient } from './provider.js'
import { externalStore } from './store.js'

/** A write the server did not apply, as the client records it (`client.rejections()`). */
export interface Rejection {
  /** Local id, for `clear([id])`. */
  id: number
  table: string
  recordID: string
  operation: 'create' | 'update' | 'delete'
  status: string
  /** The server's reason code, e.g. `table_read_only`, `forbidden`, `invalid_data`. */
  reasonCode: string
  message: string
  /** What happened to the local row (`server_version`, `removed`, `refetch`, `kept`). */
  resolution: string
  rejectedAt: string
}

/** The client's durable-rejections API, as far as this hook uses it. */
interface RejectionApi {
  rejections(): Promise<Rejection[]>
  clearRejections(ids?: readonly number[]): Promise<void>
  onRejectionsChange(cb: () => void): () => void
}

/** The client's rejection API, or null for a client version without durable rejections. */
export function rejectionApi(client: SynchroClient): RejectionApi | null {
  const c = client as unknown as Partial<RejectionApi>
  return typeof c.rejections === 'function' &&
    typeof c.clearRejections === 'function' &&
    typeof c.onRejectionsChange === 'function'
    ? (c as RejectionApi)
    : null
}

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
  const api = rejectionApi(client)
  const store = useMemo(
    () =>
      externalStore<Rejection[]>(NONE, (set) => {
        if (!api) return () => {}
        let stopped = false
        let reads = 0
        const read = () => {
          // Only the newest read may land: an older, slower one must not overwrite it.
          const n = ++reads
          api.rejections().then(
            (list) => {
              if (!stopped && n === reads) set(list)
            },
            () => {},
          )
        }
        const unsubscribe = api.onRejectionsChange(read)
        read()
        return () => {
          stopped = true
          unsubscribe()
        }
      }),
    [api],
  )
  const rejections = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  const clear = useCallback(async (ids?: readonly number[]) => api?.clearRejections(ids), [api])
  return { rejections, clear }
}
