import { exampleSuite, overHttp } from '../shared/suite.js'
import { start } from './server.js'

exampleSuite('hono', async (config) => overHttp(await start(config)))
