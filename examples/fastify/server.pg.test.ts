import { exampleSuite, overHttp } from '../shared/suite.js'
import { start } from './server.js'

exampleSuite('fastify', async (config) => overHttp(await start(config)))
