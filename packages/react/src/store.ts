/**
 * A tiny external store for `useSyncExternalStore`: a snapshot that changes by reference only when it changes, and
 * a source that is subscribed to while (and only while) React listens.
 */
export interface ExternalStore<T> {
  subscribe(onChange: () => void): () => void
  getSnapshot(): T
}

/**
 * Builds a store whose `start(set)` runs on the first subscriber and whose returned cleanup runs after the last one
 * leaves. `set` replaces the snapshot and tells React; `get` reads it.
 */
export function externalStore<T>(
  initial: T,
  start: (set: (next: T) => void, get: () => T) => () => void,
): ExternalStore<T> {
  let snapshot = initial
  const listeners = new Set<() => void>()
  let stop: (() => void) | null = null
  const set = (next: T) => {
    if (Object.is(next, snapshot)) return
    snapshot = next
    for (const l of [...listeners]) l()
  }
  return {
    subscribe(onChange) {
      listeners.add(onChange)
      if (listeners.size === 1) stop = start(set, () => snapshot)
      return () => {
        listeners.delete(onChange)
        if (listeners.size === 0 && stop) {
          const s = stop
          stop = null
          s()
        }
      }
    },
    getSnapshot: () => snapshot,
  }
}
