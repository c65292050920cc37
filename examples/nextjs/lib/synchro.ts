import { configFromEnv, createSynchro, PREFIX } from '../../shared/synchro.js'

type Synchro = Awaited<ReturnType<typeof createSynchro>>

// One engine and one WAL consumer per server process, kept on globalThis so `next dev` module reloads reuse them.
const holder = globalThis as typeof globalThis & { __synchro?: Promise<Synchro> }

/** The process-wide Synchro instance, created on first use from DATABASE_URL / JWT_SECRET (/ SYNCHRO_SLOT). */
export function getSynchro(): Promise<Synchro> {
  // Next.js hands route handlers the full URL (`/api/sync/push`), so `basePath` strips the prefix.
  holder.__synchro ??= createSynchro(configFromEnv(), PREFIX).catch((err: unknown) => {
    holder.__synchro = undefined // a failed start (database down) is retried by the next request
    throw err
  })
  return holder.__synchro
}

/** Stops the WAL consumer and closes the pool (tests; a Next.js server normally runs until the process ends). */
export async function closeSynchro(): Promise<void> {
  const running = holder.__synchro
  holder.__synchro = undefined
  if (!running) return
  const synchro = await running
  synchro.endLiveStreams()
  await synchro.close()
}
