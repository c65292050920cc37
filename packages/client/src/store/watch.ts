/**
 * `watch`: runs a query now and again whenever one of its tables changes. Re-runs are coalesced: a change during a
 * run makes that run go once more, never two runs at once.
 */
export function watchQuery<T>(
  query: () => Promise<T[]>,
  onChange: (changed: () => void) => () => void,
  cb: (rows: T[]) => void,
  onError?: (err: unknown) => void,
): () => void {
  let stopped = false
  let running = false
  let dirty = false
  const run = async (): Promise<void> => {
    if (running) {
      dirty = true
      return
    }
    running = true
    try {
      do {
        dirty = false
        const rows = await query()
        if (!stopped) cb(rows)
      } while (dirty && !stopped)
    } catch (err) {
      if (!stopped) onError?.(err)
    } finally {
      running = false
    }
  }
  const unsub = onChange(() => {
    void run()
  })
  void run()
  return () => {
    stopped = true
    unsub()
  }
}
