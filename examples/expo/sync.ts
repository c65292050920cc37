/**
 * The SynchroClient of the app: op-sqlite for storage, the server's URL, a stable installation id.
 */
import { open } from '@op-engineering/op-sqlite'
import { SynchroClient } from '@synchro/client'
import { opSqliteDriver } from '@synchro/client/op-sqlite'
import { randomUUID } from 'expo-crypto'

/** Android emulators reach the host machine at 10.0.2.2; iOS simulators at localhost. */
export const SERVER_URL = process.env.EXPO_PUBLIC_SYNCHRO_URL ?? 'http://10.0.2.2:8080'

/** One id per installation, kept in the app's own SQLite database next to the synced tables. */
async function installationId(): Promise<string> {
  const db = open({ name: 'installation.sqlite' })
  await db.execute('CREATE TABLE IF NOT EXISTS installation (id TEXT NOT NULL)')
  const { rows } = await db.execute('SELECT id FROM installation LIMIT 1')
  const existing = rows[0]?.id
  if (typeof existing === 'string') return existing
  const id = randomUUID()
  await db.execute('INSERT INTO installation (id) VALUES (?)', [id])
  return id
}

export async function createClient(userID: string): Promise<SynchroClient> {
  return new SynchroClient({
    driver: opSqliteDriver(open({ name: 'synchro.sqlite' })),
    serverURL: SERVER_URL,
    // Dev server without JWT auth; in production: authProvider: async () => await getAccessToken()
    userID,
    clientID: await installationId(),
    appVersion: '1.0.0',
    // React Native's fetch has no streaming response bodies: sync on the timer and after local writes instead.
    live: false,
    syncInterval: 15,
  })
}
