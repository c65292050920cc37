import type { Ticket } from '../limits/admission.js'

export class BodyTooLarge extends Error {}
export class BodyInvalid extends Error {}
export class BodyBudgetExhausted extends Error {}

/**
 * Reads the body as UTF-8 text, enforcing the byte limit while streaming (a huge body is never buffered) and
 * reserving its bytes in the global body budget first (declared length) or as they arrive (chunked).
 */
export async function readBody(request: Request, limit: number, ticket: Ticket): Promise<string> {
  const declared = request.headers.get('content-length')
  if (declared !== null && Number(declared) > limit) throw new BodyTooLarge()
  let reserved = declared !== null && Number(declared) > 0 ? Number(declared) : 0
  if (!ticket.reserve(reserved)) throw new BodyBudgetExhausted()
  if (!request.body) return ''
  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel().catch(() => {})
      throw new BodyTooLarge()
    }
    if (size > reserved) {
      const more = size - reserved
      if (!ticket.reserve(more)) {
        await reader.cancel().catch(() => {})
        throw new BodyBudgetExhausted()
      }
      reserved = size
    }
    chunks.push(value)
  }
  const buf = new Uint8Array(size)
  let off = 0
  for (const c of chunks) {
    buf.set(c, off)
    off += c.byteLength
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf)
  } catch {
    throw new BodyInvalid()
  }
}
