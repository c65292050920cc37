import { getSynchro } from '../../../../lib/synchro.js'

// pg and the WAL consumer need Node.js (not the Edge runtime); sync answers must never be cached or pre-rendered.
export const runtime = 'nodejs'
export const dynamic = 'force-dynamic'

/** Every `/api/sync/*` request goes to the Web-standard handler unchanged (a NextRequest is a `Request`). */
async function handle(request: Request): Promise<Response> {
  const synchro = await getSynchro()
  return synchro.handler(request)
}

export { handle as GET, handle as POST }
