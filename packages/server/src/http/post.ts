import { decodeRequest, type Endpoint, MAX_PUSH_CHANGES, type RequestOf } from '@synchro/protocol'
import type { SyncService } from '../core/service.js'
import type { Ticket } from '../limits/admission.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { BodyBudgetExhausted, BodyInvalid, BodyTooLarge, readBody } from './body.js'
import { CLIENT_CLOSED_REQUEST, error, json, wireError } from './responses.js'

/** Runs one request's engine work under a fresh deadline (see answerBy), holding its admission ticket until done. */
export type EngineCall = (fn: (deadline: RequestDeadline) => Promise<Response>) => Promise<Response>

/** A POST endpoint (register, pull, push, snapshot): reads and decodes the body, then runs the engine call. */
export async function handlePost(
  engine: SyncService,
  endpoint: Endpoint,
  request: Request,
  userId: string,
  ticket: Ticket,
  call: EngineCall,
  limits: { bodyLimit: number; unavailable: () => Response },
): Promise<Response> {
  // Reading and decoding the body happen before the deadline starts: it bounds waiting for the database, not a
  // slow upload (the server's request timeout bounds that).
  let text: string
  try {
    text = await readBody(request, limits.bodyLimit, ticket)
  } catch (err) {
    ticket.release()
    if (err instanceof BodyTooLarge) return wireError('payload_too_large')
    if (err instanceof BodyInvalid) return wireError('invalid_request_body')
    if (err instanceof BodyBudgetExhausted) return limits.unavailable()
    // The body stream failed: the client went away mid-body and nobody reads this answer. Not a server fault, so
    // not a 503: 499 (nginx's "client closed request") lets metrics count it apart.
    return error(CLIENT_CLOSED_REQUEST, 'client closed request')
  }
  const decoded = decodeRequest(endpoint, text)
  if (!decoded.ok) {
    ticket.release()
    // The decoder's message names the problem (`<key> is required` is missing_key): both are 400s.
    return wireError('invalid_request_body', decoded.error)
  }
  switch (endpoint) {
    case 'register':
      return call(async (deadline) =>
        json(200, await engine.register(userId, decoded.value as RequestOf<'register'>, { deadline })),
      )
    case 'pull':
      return call(async (deadline) =>
        json(200, await engine.pull(userId, decoded.value as RequestOf<'pull'>, { deadline })),
      )
    case 'push': {
      const req = decoded.value as RequestOf<'push'>
      if ((req.changes?.length ?? 0) > MAX_PUSH_CHANGES) {
        ticket.release()
        return wireError('too_many_changes')
      }
      return call(async (deadline) => json(200, await engine.push(userId, req, { deadline })))
    }
    case 'snapshot':
      return call(async (deadline) =>
        json(200, await engine.snapshot(userId, decoded.value as RequestOf<'snapshot'>, { deadline })),
      )
  }
}
