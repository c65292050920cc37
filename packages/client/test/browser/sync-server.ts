/**
 * A real sync server for browser tests: a fresh PostgreSQL database with the Northwind fixture, the engine, the
 * WAL consumer, and the test web server serving the page and the sync routes on one origin.
 */
import {
  createEngine,
  createSyncHandler,
  headerAuth,
  Registry,
  startWalConsumer,
  type WalConsumer,
} from '@synchro/server'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { NORTHWIND_DDL, NORTHWIND_SEED, NORTHWIND_TABLES } from '../northwind.js'
import { startWebServer, type TestWebServer } from './server.js'

export interface BrowserSyncServer {
  db: TestDatabase
  web: TestWebServer
  /** Waits until the WAL consumer has captured every committed write (no sleeps). */
  walCaughtUp(): Promise<void>
  close(): Promise<void>
}

export async function startBrowserSyncServer(name: string, staticDir?: string): Promise<BrowserSyncServer> {
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
  const web = await startWebServer(createSyncHandler(engine, { authenticate: headerAuth() }), staticDir)
  const consumer: WalConsumer = startWalConsumer({
    pool: db.pool,
    registry,
    replicationUrl: db.url,
    // Named after the unique database (slots are server-wide): a slot left by an aborted run never blocks the next.
    slotName: db.name,
    publicationName: `${name}_pub`,
  })
  for (let i = 0; !consumer.status().running; i++) {
    if (i > 3000) throw new Error('WAL consumer not running')
    await new Promise((r) => setTimeout(r, 10))
  }
  return {
    db,
    web,
    async walCaughtUp() {
      const { rows } = await db.pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
      await consumer.waitForLsn(rows[0]!.lsn, 30_000)
    },
    async close() {
      engine.endLiveStreams()
      await web.close()
      await consumer.stop().catch(() => {})
      await engine.close().catch(() => {})
      await db.drop()
    },
  }
}
