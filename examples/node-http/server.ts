import http from 'node:http'
import { toNodeListener } from '@synchro/server/node'
import { createSynchro, type ExampleConfig, listen, PREFIX, type RunningExample, runIfMain } from '../shared/synchro.js'

/** node:http: the full URL reaches the handler, so `basePath` strips the prefix. */
export async function start(config: ExampleConfig): Promise<RunningExample> {
  const synchro = await createSynchro(config, PREFIX)
  const sync = toNodeListener(synchro.handler)
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith(`${PREFIX}/`)) return void sync(req, res)
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
  })
  return listen(server, config.port, synchro)
}

runIfMain(import.meta.url, start)
