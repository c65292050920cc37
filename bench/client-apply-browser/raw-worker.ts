// The baseline: raw sqlite-wasm on the same OPFS VFS, in a worker like the SDK's — prepared INSERTs of the rows
// (JSON columns to text, the minimum any client does) in one transaction.
import sqlite3InitModule from '@sqlite.org/sqlite-wasm'

type Msg = { dir: string; createSql: string; insertSql: string; rows: unknown[][] }

const scope = globalThis as unknown as {
  onmessage: ((e: MessageEvent<Msg>) => void) | null
  postMessage(m: unknown): void
}
const ready = sqlite3InitModule()

scope.onmessage = async (e) => {
  try {
    const s3 = await ready
    const pool = await s3.installOpfsSAHPoolVfs({ name: e.data.dir, directory: `.${e.data.dir}` })
    const db = new pool.OpfsSAHPoolDb('/raw.sqlite3')
    db.exec('PRAGMA journal_mode = TRUNCATE')
    db.exec(e.data.createSql)
    const rows = e.data.rows
    const t0 = performance.now()
    const stmt = db.prepare(e.data.insertSql)
    db.exec('BEGIN IMMEDIATE')
    for (const r of rows) {
      const d = r.slice()
      d[7] = JSON.stringify(d[7])
      stmt.bind(d as never).stepReset()
      stmt.clearBindings()
    }
    db.exec('COMMIT')
    stmt.finalize()
    const ms = performance.now() - t0
    const n = db.selectValue('SELECT count(*) FROM orders')
    db.close()
    scope.postMessage({ ms, n })
  } catch (err) {
    scope.postMessage({ error: String(err) })
  }
}
