/**
 * The real server side of an end-to-end client test: `@synchro/server`'s engine and HTTP handler on node:http
 * (random port) plus a WAL consumer, over a test database the caller created and filled.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createEngine,
  createSyncHandler,
  type EngineOptions,
  headerAuth,
  type Registry,
  startWalConsumer,
} from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import type { TestDatabase } from '@synchro/test-harness/pg'
import { waitFor } from './helpers.js'

export interface SyncStack {
  url: string
  /** Waits until the WAL consumer has turned every committed write into changelog rows (no sleeps). */
  walCaughtUp(): Promise<void>
  close(): Promise<void>
}

export async function startSyncStack(
  db: TestDatabase,
  registry: Registry,
  name: string,
  options: Partial<EngineOptions> = {},
): Promise<SyncStack> {
  const log = (o: object, m?: string) => console.error('[server]', m, o)
  const engine = await createEngine({
    pool: db.pool,
    registry,
    live: { pollIntervalMs: 20 },
    logger: { debug() {}, info() {}, warn: log, error: log },
    ...options,
  })
  const httpServer = http.createServer(toNodeListener(createSyncHandler(engine, { authenticate: headerAuth() })))
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', () => r()))
  const consumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    // The database name is unique per run (slots are cluster-wide: a fixed name collides with a leftover slot).
    slotName: db.name,
    publicationName: `${name}_pub`,
  })
  await waitFor(() => consumer.status().running, 30_000, 'WAL consumer running')
  return {
    url: `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`,
    async walCaughtUp() {
      const { rows } = await db.pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
      await consumer.waitForLsn(rows[0]!.lsn, 30_000)
    },
    async close() {
      await consumer.stop().catch(() => {})
      await new Promise<void>((r) => httpServer.close(() => r()))
      await engine.close().catch(() => {})
    },
  }
}
