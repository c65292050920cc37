import type pg from 'pg'
import type { Logger } from './log.js'
import { safeErrorFacts } from './log.js'

const guarded = new WeakSet<pg.Pool>()

/**
 * Makes a pool safe against connection loss (a database restart, a network cut, pg_terminate_backend): pg emits
 * `error` on a client whose socket dies, and while a client is checked out the pool has no listener on it, so the
 * process would crash with an unhandled 'error' event. Every client the pool hands out gets a listener (the failing
 * query itself rejects and is answered 503 by the HTTP layer), and so does the pool (idle clients). Idempotent.
 *
 * Clients are guarded when handed out ('acquire'), not only when opened: a pool the application used before giving
 * it to us holds idle clients opened earlier, which carry only the pool's own idle listener (pg-pool removes it at
 * checkout), so a guard added when they were opened, or only to clients without any listener, would miss them.
 */
export function guardPool(pool: pg.Pool, logger: Logger): void {
  if (guarded.has(pool)) return
  guarded.add(pool)
  const log = (err: Error) => logger.warn({ err: safeErrorFacts(err, false) }, 'database connection error')
  const clients = new WeakSet<pg.PoolClient>()
  const guard = (client: pg.PoolClient) => {
    if (clients.has(client)) return
    clients.add(client)
    client.on('error', log)
  }
  pool.on('error', log)
  pool.on('connect', guard)
  pool.on('acquire', guard)
  // Clients checked out right now (pg keeps every client it opened in `_clients`; best effort, private field).
  const existing = (pool as unknown as { _clients?: unknown })._clients
  if (Array.isArray(existing)) for (const c of existing as pg.PoolClient[]) guard(c)
}
