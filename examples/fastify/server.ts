import { toNodeListener } from '@synchro/server/node'
import Fastify from 'fastify'
import { createSynchro, type ExampleConfig, PREFIX, type RunningExample, runIfMain } from '../shared/synchro.js'

/**
 * Fastify 5: the route hands the raw Node request/response to the handler (`reply.hijack()`), so the full URL
 * arrives and `basePath` strips the prefix. Inside this plugin no body parser runs: the handler reads (and
 * size-limits) the body stream itself.
 */
export async function start(config: ExampleConfig): Promise<RunningExample> {
  const synchro = await createSynchro(config, PREFIX)
  const sync = toNodeListener(synchro.handler)
  const app = Fastify()
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null))
    scope.all(`${PREFIX}/sync/*`, async (request, reply) => {
      reply.hijack()
      await sync(request.raw, reply.raw)
    })
  })
  app.get('/hello', async () => ({ hello: 'world' }))
  await app.listen({ port: config.port ?? 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}${PREFIX}`,
    async close() {
      synchro.endLiveStreams()
      await app.close()
      await synchro.close()
    },
  }
}

runIfMain(import.meta.url, start)
