import { WIRE_ERRORS } from '@synchro/protocol'
import type { SyncService } from '../core/service.js'
import { BadRequestError } from '../errors.js'
import { fitsText, MAX_IDENTIFIER_LENGTH } from '../limits/limits.js'

/** Seconds between heartbeat comments: keeps proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000

/**
 * `GET /sync/events?client_id=…[&checkpoint=N]` — a Server-Sent Events stream of `poke` events for the caller's buckets (an extension
 * of the reference protocol; clients that don't use it are unaffected). Each event is a hint to pull now:
 * `event: poke` / `data: {"seq":<newest changelog seq>}`. The first event is `ready`.
 */
export async function eventStream(engine: SyncService, request: Request, userId: string, url: URL): Promise<Response> {
  const clientId = url.searchParams.get('client_id')
  if (!clientId) throw new BadRequestError('client_id is required', 'missing_key')
  // Same bounds as register: an id PostgreSQL cannot store (NUL) or index is no registered client.
  if (!fitsText(clientId, MAX_IDENTIFIER_LENGTH)) throw new BadRequestError(WIRE_ERRORS.invalid_request_body.message)
  const cp = url.searchParams.get('checkpoint')
  const since = cp !== null && /^\d{1,15}$/.test(cp) ? Number(cp) : undefined
  const encoder = new TextEncoder()
  let unsubscribe: (() => void) | undefined
  let heartbeat: NodeJS.Timeout | undefined
  let closed = false
  const close = () => {
    if (closed) return
    closed = true
    unsubscribe?.()
    if (heartbeat) clearInterval(heartbeat)
  }
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c
    },
    cancel() {
      close()
    },
  })
  const send = (text: string) => {
    if (closed) return
    try {
      controller.enqueue(encoder.encode(text))
    } catch {
      close()
    }
  }
  // Subscribing first makes an unregistered client a plain 404 before any stream bytes are sent.
  unsubscribe = await engine.subscribeChanges(
    userId,
    clientId,
    (seq) => send(`event: poke\ndata: {"seq":${seq}}\n\n`),
    since,
    // Engine shutdown: end the stream so graceful shutdowns are not held open; the client reconnects.
    () => {
      close()
      try {
        controller.close()
      } catch {
        // already closed or cancelled
      }
    },
  )
  // Not request.signal: behind node adapters it can fire as soon as the (empty) request body is consumed. A client
  // that goes away cancels the response stream instead (→ cancel() above).
  void request
  heartbeat = setInterval(() => send(': ping\n\n'), HEARTBEAT_MS)
  heartbeat.unref()
  send('retry: 2000\nevent: ready\ndata: {}\n\n')
  return new Response(stream, {
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' },
  })
}
