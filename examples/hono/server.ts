import type { Server } from 'node:http'
import { createAdaptorServer } from '@hono/node-server'
import { Hono } from 'hono'
import { createSynchro, type ExampleConfig, listen, PREFIX, type RunningExample, runIfMain } from '../shared/synchro.js'

/** Hono on Node: `app.mount(PREFIX, handler)` strips the prefix before calling the handler, so `basePath` stays empty. */
export async function start(config: ExampleConfig): Promise<RunningExample> {
  const synchro = await createSynchro(config, '')
  const app = new Hono()
  app.mount(PREFIX, synchro.handler)
  app.get('/hello', (c) => c.json({ hello: 'world' }))
  // createAdaptorServer is `serve()` without the listen call (node:http by default).
  return listen(createAdaptorServer({ fetch: app.fetch }) as Server, config.port, synchro)
}

runIfMain(import.meta.url, start)
