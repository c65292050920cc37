import http from 'node:http'
import { toNodeListener } from '@synchro/server/node'
import express from 'express'
import { createSynchro, type ExampleConfig, listen, PREFIX, type RunningExample, runIfMain } from '../shared/synchro.js'

/**
 * Express 5: `app.use(PREFIX, …)` strips the prefix from `req.url` before the handler sees it, so `basePath` stays
 * empty. Mount Synchro before any body parser (`express.json()` would consume the body the handler reads).
 */
export async function start(config: ExampleConfig): Promise<RunningExample> {
  const synchro = await createSynchro(config, '')
  const app = express()
  app.use(PREFIX, toNodeListener(synchro.handler))
  // The app's own routes and parsers come after (or on other paths).
  app.use(express.json())
  app.get('/hello', (_req, res) => {
    res.json({ hello: 'world' })
  })
  return listen(http.createServer(app), config.port, synchro)
}

runIfMain(import.meta.url, start)
