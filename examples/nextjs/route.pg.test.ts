import { exampleSuite } from '../shared/suite.js'

// `next` itself is not installed (it is large and not needed to prove the mount): the exported route handlers are
// called with real `Request` objects, as Next.js's Node runtime calls them, including the streamed SSE response.
exampleSuite('nextjs (route handlers called with Request objects)', async (config) => {
  process.env.DATABASE_URL = config.databaseUrl
  process.env.JWT_SECRET = config.jwtSecret
  process.env.SYNCHRO_SLOT = config.slotName
  process.env.NEXT_RUNTIME = 'nodejs' // what Next.js sets before calling instrumentation's register()
  await (await import('./instrumentation.js')).register()
  const route = await import('./app/api/sync/[...path]/route.js')
  const { closeSynchro } = await import('./lib/synchro.js')
  return {
    fetch(path, init) {
      const request = new Request(`http://localhost:3000/api${path}`, init)
      return request.method === 'POST' ? route.POST(request) : route.GET(request)
    },
    close: closeSynchro,
  }
})
