/**
 * A real server for end-to-end tests: a fresh PostgreSQL database with the Northwind schema, the engine behind
 * node:http on a random port, and the WAL consumer feeding the changelog.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createEngine,
  createSyncHandler,
  headerAuth,
  Registry,
  startWalConsumer,
  toNodeListener,
  type WalConsumer,
} from '@synchro/server'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import type { FetchLike } from '../sync/transport.js'
import { waitFor } from './helpers.js'
import { NORTHWIND_DDL, NORTHWIND_SEED, NORTHWIND_TABLES } from './northwind.js'

export interface PgServer {
  db: TestDatabase
  url: string
  /** Waits until the WAL consumer has turned every committed write into changelog rows (no sleeps). */
  walCaughtUp(): Promise<void>
  stop(): Promise<void>
}

export async function startPgServer(name: string): Promise<PgServer> {
  const db = await createTestDatabase(name)
  await db.pool.query(NORTHWIND_DDL)
  await db.pool.query(NORTHWIND_SEED)
  const registry = new Registry()
  for (const t of NORTHWIND_TABLES) registry.register(t)
  const log = (o: object, m?: string) => console.error('[server]', m, o)
  const engine = await createEngine({
    pool: db.pool,
    registry,
    live: { pollIntervalMs: 20 },
    logger: { debug() {}, info() {}, warn: log, error: log },
  })
  const httpServer = http.createServer(toNodeListener(createSyncHandler(engine, { authenticate: headerAuth() })))
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', () => r()))
  const url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`
  const consumer: WalConsumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    slotName: `${name}_slot`,
    publicationName: `${name}_pub`,
  })
  await waitFor(() => consumer.status().running, 30_000, 'WAL consumer running')
  return {
    db,
    url,
    walCaughtUp: async () => {
      const { rows } = await db.pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
      await consumer.waitForLsn(rows[0]!.lsn, 30_000)
    },
    stop: async () => {
      await consumer.stop().catch(() => {})
      await new Promise<void>((r) => httpServer.close(() => r()))
      await engine.close().catch(() => {})
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
