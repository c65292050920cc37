// HTTP over a real socket, with a hard per-request timeout so "never a hang" is measurable.

export type Json = any

export interface Answer {
  status: number
  body: Json
  text: string
  headers: Headers
  ms: number
}

export interface CallOptions {
  user?: string
  body?: unknown
  /** Raw body (string or bytes) sent as is. */
  raw?: string | Uint8Array
  headers?: Record<string, string>
  timeoutMs?: number
}

/** Thrown when no HTTP answer arrived (refused, reset, timeout). */
export class NoAnswer extends Error {
  constructor(
    readonly kind: 'timeout' | 'network',
    message: string,
    readonly ms: number,
    /** Socket error code when known (ECONNREFUSED = the request never reached a server). */
    readonly code?: string,
  ) {
    super(message)
  }
}

export async function call(base: string, method: string, route: string, o: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) }
  if (o.user !== undefined) headers['x-user-id'] = o.user
  let body: string | Uint8Array | undefined
  if (o.raw !== undefined) body = o.raw
  else if (o.body !== undefined) body = JSON.stringify(o.body)
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json'
  const started = performance.now()
  const timeoutMs = o.timeoutMs ?? 30_000
  let res: Response
  let text: string
  try {
    res = await fetch(`${base}${route}`, {
      method,
      headers,
      body: body as BodyInit | undefined,
      signal: AbortSignal.timeout(timeoutMs),
    })
    text = await res.text()
  } catch (err) {
    const ms = performance.now() - started
    const e = err as Error & { cause?: { code?: string } }
    if (e.name === 'TimeoutError' || e.name === 'AbortError')
      throw new NoAnswer('timeout', `timeout after ${ms} ms`, ms)
    throw new NoAnswer('network', `${e.message}${e.cause?.code ? ` (${e.cause.code})` : ''}`, ms, e.cause?.code)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  return { status: res.status, body: parsed, text, headers: res.headers, ms: performance.now() - started }
}

/**
 * GET of an event stream: the answer's status and JSON body, or — when the server opened the stream — status 200 with
 * the stream closed right after its headers (a stream never ends, so `call` would time out).
 */
export async function callStream(base: string, route: string, o: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(o.headers ?? {}) }
  if (o.user !== undefined) headers['x-user-id'] = o.user
  const started = performance.now()
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(), o.timeoutMs ?? 30_000)
  try {
    const res = await fetch(`${base}${route}`, { headers, signal: abort.signal })
    if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      abort.abort()
      return { status: res.status, body: undefined, text: '', headers: res.headers, ms: performance.now() - started }
    }
    const text = await res.text()
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      body = undefined
    }
    return { status: res.status, body, text, headers: res.headers, ms: performance.now() - started }
  } catch (err) {
    const ms = performance.now() - started
    throw new NoAnswer(abort.signal.aborted ? 'timeout' : 'network', String((err as Error).message), ms)
  } finally {
    clearTimeout(timer)
  }
}
