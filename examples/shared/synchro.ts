import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { createEngine, createSyncHandler, jwtAuth, Registry, startWalConsumer } from '@synchro/server'
import pg from 'pg'

/** What every example needs: its database, the JWT secret its clients' tokens are signed with. */
export interface ExampleConfig {
  databaseUrl: string
  jwtSecret: string
  /** Replication slot name (default `synchro_slot`); one per database that runs a WAL consumer. */
  slotName?: string
  /** TCP port to listen on (0 = any free port). */
  port?: number
}

/** A running example: `url` is the `serverURL` clients use (it ends in the mount prefix, e.g. `…/api`). */
export interface RunningExample {
  url: string
  close(): Promise<void>
}

/** Every example mounts Synchro under this prefix; clients call `${origin}/api/sync/…`. */
export const PREFIX = '/api'

// A real app creates its tables with its own migrations; the examples create theirs so they run on an empty database.
const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS todos (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL,
  title text NOT NULL DEFAULT '',
  done boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS todos_user_id_idx ON todos (user_id);
`

/** The registry every example serves: each user's private todo list. */
export function exampleRegistry(): Registry {
  return new Registry().register({ tableName: 'todos', ownerColumn: 'user_id' })
}

/**
 * The framework-independent part of every example: pool, engine, the Web-standard handler (JWT auth) and the WAL
 * consumer. `basePath` is the part of the URL path the framework leaves in front of `/sync/…` (see each example).
 */
export async function createSynchro(config: ExampleConfig, basePath: string) {
  const pool = new pg.Pool({ connectionString: config.databaseUrl })
  await pool.query(SCHEMA_SQL)
  const registry = exampleRegistry()
  const engine = await createEngine({ pool, registry })
  const handler = createSyncHandler(engine, { authenticate: jwtAuth({ secret: config.jwtSecret }), basePath })
  const wal = startWalConsumer({ pool, registry, replicationUrl: config.databaseUrl, slotName: config.slotName })
  return {
    handler,
    /** Ends live streams first: open SSE connections would otherwise hold a graceful `server.close()` open. */
    endLiveStreams: () => engine.endLiveStreams(),
    async close() {
      await wal.stop()
      await engine.close()
      await pool.end()
    },
  }
}

type Synchro = Awaited<ReturnType<typeof createSynchro>>

/** Starts `server` on `port`; closing ends the live streams first, then the server, then Synchro. */
export async function listen(server: Server, port: number | undefined, synchro: Synchro): Promise<RunningExample> {
  await new Promise<void>((resolve) => server.listen(port ?? 0, resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${PREFIX}`,
    async close() {
      synchro.endLiveStreams()
      await new Promise((resolve) => server.close(resolve))
      await synchro.close()
    },
  }
}

/** Configuration from the environment; refuses to start without a database or a JWT secret. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const databaseUrl = env.DATABASE_URL
  const jwtSecret = env.JWT_SECRET
  if (!databaseUrl) throw new Error('DATABASE_URL is required (a PostgreSQL with wal_level=logical)')
  if (!jwtSecret) throw new Error('JWT_SECRET is required (the HS256 secret client tokens are signed with)')
  return { databaseUrl, jwtSecret, slotName: env.SYNCHRO_SLOT, port: Number(env.PORT ?? 3000) }
}

/** Runs `start` when the file is executed directly (not when a test imports it) and stops it on SIGINT/SIGTERM. */
export function runIfMain(moduleUrl: string, start: (config: ExampleConfig) => Promise<RunningExample>): void {
  const entry = process.argv[1]
  if (!entry || pathToFileURL(entry).href !== moduleUrl) return
  start(configFromEnv()).then(
    (running) => {
      console.log(`Synchro mounted at ${running.url}/sync/…`)
      const stop = () => void running.close().then(() => process.exit(0))
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
    },
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    },
  )
}
