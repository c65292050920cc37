import type { IncomingMessage, ServerResponse } from 'node:http'
import { getRequestListener } from '@hono/node-server'

/** Adapts a Web-standard handler to a node:http listener (Express: `app.use(toNodeListener(h))`). */
export function toNodeListener(
  handler: (request: Request) => Promise<Response>,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return getRequestListener(handler)
}
