// The whole server in this process, for scenarios that need the engine's hooks or options: Northwind schema and
// seed, engine, WAL consumer on the database's own slot, the handler on a random port (header auth, quiet logs).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createEngine,
  createSyncHandler,
  ensurePublication,
  ensureSlot,
  headerAuth,
  Registry,
  startWalConsumer,
} from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { NORTHWIND_SEED_SQL, NORTHWIND_SQL, NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { type RelDb, slotFor } from './db.js'

type EngineExtras = Omit<Parameters<typeof createEngine>[0], 'pool' | 'registry' | 'logger'>

export interface InProcessStack {
  engine: Awaited<ReturnType<typeof createEngine>>
  /** `http://127.0.0.1:<port>` */
  base: string
  /** Closes the server (and its connections), the consumer and the engine; never throws. */
  stop(): Promise<void>
}

export async function startInProcessStack(db: RelDb, extras: EngineExtras = {}): Promise<InProcessStack> {
  const quiet = { debug() {}, info() {}, warn() {}, error() {} }
  const stops: (() => Promise<unknown>)[] = []
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => {})
  }
  try {
    await db.pool.query(NORTHWIND_SQL)
    const registry = new Registry()
    for (const t of NORTHWIND_TABLES) registry.register(t)
    const engine = await createEngine({ pool: db.pool, registry, logger: quiet, ...extras })
    stops.push(() => engine.close())
    const slot = slotFor(db)
    await ensurePublication(db.pool, registry, 'synchro_pub')
    await ensureSlot(db.pool, slot)
    const consumer = startWalConsumer({
      pool: db.pool,
      registry,
      replicationUrl: db.url,
      slotName: slot,
      logger: quiet,
    })
    stops.push(() => consumer.stop())
    await db.pool.query(NORTHWIND_SEED_SQL)
    const server = http.createServer(
      toNodeListener(createSyncHandler(engine, { authenticate: headerAuth(), logger: quiet })),
    )
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    stops.push(async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    })
    return { engine, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, stop }
  } catch (err) {
    await stop()
    throw err
  }
}
