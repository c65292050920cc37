/**
 * A real server for end-to-end tests: a fresh PostgreSQL database with the Northwind schema, the engine behind
 * node:http on a random port, and the WAL consumer feeding the changelog.
 */
import { type EngineOptions, Registry } from '@synchro/server'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import type { FetchLike } from '../src/sync/transport.js'
import { cleanupTempDirs } from './helpers.js'
import { NORTHWIND_DDL, NORTHWIND_SEED, NORTHWIND_TABLES } from './northwind.js'
import { startSyncStack } from './sync-stack.js'

export interface PgServer {
  db: TestDatabase
  url: string
  /** Waits until the WAL consumer has turned every committed write into changelog rows (no sleeps). */
  walCaughtUp(): Promise<void>
  stop(): Promise<void>
}

export async function startPgServer(name: string, options: Partial<EngineOptions> = {}): Promise<PgServer> {
  const db = await createTestDatabase(name)
  await db.pool.query(NORTHWIND_DDL)
  await db.pool.query(NORTHWIND_SEED)
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  const stack = await startSyncStack(db, registry, name, options)
  return {
    db,
    url: stack.url,
    walCaughtUp: () => stack.walCaughtUp(),
    stop: async () => {
      await stack.close()
      await db.drop()
    },
  }
}

/** A fetch that can be switched off, like a phone losing its network. */
export function switchableFetch(): { fetch: FetchLike; online: { value: boolean } } {
  const online = { value: true }
  return {
    online,
    fetch: (input, init) =>
      online.value ? fetch(input, init) : Promise.reject(new TypeError('fetch failed (offline)')),
  }
}

/** A test file's teardown: its clients closed, its server stopped, its temporary folders removed. */
export async function stopAll(clients: { close(): Promise<unknown> }[], server: PgServer | undefined): Promise<void> {
  for (const c of clients.splice(0)) await c.close().catch(() => {})
  await server?.stop()
  cleanupTempDirs()
}
