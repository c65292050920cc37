/**
 * Next.js calls `register()` once when a server instance starts: start the WAL consumer there, not on the first
 * request (changes are only captured once its replication slot exists).
 */
export async function register(): Promise<void> {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return // the Edge runtime has no pg
  const { getSynchro } = await import('./lib/synchro.js')
  await getSynchro()
}
