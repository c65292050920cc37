import { WIRE_ERRORS } from '@synchro/protocol'
import type { PokeRange } from '../changelog/notifier.js'
import type { SyncService } from '../core/service.js'
import { BadRequestError } from '../errors.js'
import { fitsText, MAX_IDENTIFIER_LENGTH } from '../limits/limits.js'

/** Seconds between heartbeat comments: keeps proxies from closing an idle stream. */
const HEARTBEAT_MS = 15_000
/**
 * Bytes a stream may hold unsent (a client reading slower than changes arrive). Beyond it the stream is ended: the
 * client reconnects with its checkpoint, is poked, and pulls — nothing is lost, memory stays bounded.
 */
const MAX_UNSENT_BYTES = 256 * 1024
/** Frame bodies up to this size are copied behind the stream's own prefix (one socket write); bigger ones are shared. */
const COPY_BODY_BYTES = 16 * 1024

/**
 * `GET /sync/events?client_id=…[&checkpoint=N][&frames=1]` — a Server-Sent Events stream of `poke` events for the
 * caller's buckets (an extension of the reference protocol; clients that don't use it are unaffected). Each event is a
 * hint to pull now: `event: poke` / `data: {"seq":<newest changelog seq>}`. The first event is `ready`.
 * With `frames=1` a change range that fits is sent as `event: page` / `data: {"from":F,"to":T,"changes":[…],
 * "deletes":[…],"schema_version":…,"schema_hash":…}` instead: everything of the client's buckets in (F, T], to be
 * applied like a pull page by a client complete up to exactly F (docs/live-frames.md).
 */
export async function eventStream(engine: SyncService, request: Request, userId: string, url: URL): Promise<Response> {
  const clientId = url.searchParams.get('client_id')
  if (!clientId) throw new BadRequestError('client_id is required', 'missing_key')
  // Same bounds as register: an id PostgreSQL cannot store (NUL) or index is no registered client.
  if (!fitsText(clientId, MAX_IDENTIFIER_LENGTH)) throw new BadRequestError(WIRE_ERRORS.invalid_request_body.message)
  const cp = url.searchParams.get('checkpoint')
  const since = cp !== null && /^\d{1,15}$/.test(cp) ? Number(cp) : undefined
  const frames = url.searchParams.get('frames') === '1'
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
  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c
      },
      cancel() {
        close()
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: MAX_UNSENT_BYTES }),
  )
  const end = () => {
    close()
    try {
      controller.close()
    } catch {
      // already closed or cancelled
    }
  }
  const send = (chunk: string | Uint8Array) => {
    if (closed) return
    try {
      controller.enqueue(typeof chunk === 'string' ? encoder.encode(chunk) : chunk)
    } catch {
      close()
    }
  }
  // The newest head this client has been told about (or its own checkpoint): a frame starts there. Events are sent
  // in order, one at a time, because a frame's render is asynchronous.
  let told = since
  let queue = Promise.resolve()
  const deliver = async (seq: number, range: PokeRange | undefined) => {
    if (closed || (told !== undefined && seq <= told)) return
    const from = told
    const body =
      frames && range && from !== undefined ? await engine.liveFrame(userId, range.buckets, range.prev, seq) : undefined
    if (closed) return
    if ((controller.desiredSize ?? 0) <= 0) return end() // a slow consumer: it reconnects and pulls
    if (body) {
      const head = encoder.encode(`event: page\ndata: {"from":${from},`)
      if (body.byteLength <= COPY_BODY_BYTES) send(framed(head, body))
      else {
        send(head)
        send(body)
      }
    } else send(`event: poke\ndata: {"seq":${seq}}\n\n`)
    told = seq
  }
  // Subscribing first makes an unregistered client a plain 404 before any stream bytes are sent.
  unsubscribe = await engine.subscribeChanges(
    userId,
    clientId,
    (seq, range) => {
      queue = queue.then(() => deliver(seq, range)).catch(end)
    },
    since,
    // Engine shutdown: end the stream so graceful shutdowns are not held open; the client reconnects.
    end,
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

/** One chunk per event (one socket write per stream): the stream's own head, then the shared rendered body. */
function framed(head: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(head.byteLength + body.byteLength)
  out.set(head)
  out.set(body, head.byteLength)
  return out
}
