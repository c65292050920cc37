import { exampleSuite, overHttp } from '../shared/suite.js'
import { start } from './server.js'

exampleSuite('node-http', async (config) => overHttp(await start(config)))
