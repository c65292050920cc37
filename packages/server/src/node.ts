/** `@synchro/server/node`: the adapter from the Web-standard sync handler to node:http (needs `@hono/node-server`). */
export { toNodeListener } from './http/node.js'
