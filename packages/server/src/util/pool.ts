import type pg from 'pg'
import type { Logger } from './log.js'
import { safeErrorFacts } from './log.js'

const guarded = new WeakSet<pg.Pool>()

/**
 * Makes a pool safe against connection loss (a database restart, a network cut): pg emits `error` on a client whose
 * socket dies, and while a client is checked out the pool has no listener on it, so the process would crash with an
 * unhandled 'error' event. Every client the pool creates gets a listener (the failing query itself rejects and is
 * answered 503 by the HTTP layer), and so does the pool (idle clients). Idempotent.
 */
export function guardPool(pool: pg.Pool, logger: Logger): void {
  if (guarded.has(pool)) return
  guarded.add(pool)
  const log = (err: Error) => logger.warn({ err: safeErrorFacts(err, false) }, 'database connection error')
  pool.on('error', log)
  pool.on('connect', (client) => {
    client.on('error', log)
  })
  // Clients the pool opened before we were handed it (pg keeps them in `_clients`; best effort, private field).
  const existing = (pool as unknown as { _clients?: unknown })._clients
  if (Array.isArray(existing)) {
    for (const c of existing as pg.PoolClient[]) if (c.listenerCount('error') === 0) c.on('error', log)
  }
}
