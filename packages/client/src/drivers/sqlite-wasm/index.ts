/** `@synchro/client/sqlite-wasm`: SQLite in the browser (OPFS), shared by every tab of the origin. */

export type { WorkerLike } from './connection.js'
export { openSqliteWasm, type SqliteWasmDriver, type SqliteWasmOptions } from './driver.js'
