// The benchmark page: the SDK's apply path on the sqlite-wasm driver (OPFS, worker) and raw sqlite-wasm inserts,
// measured in the same page. Driven by index.ts through `window.bench`.
import type { SyncRecord } from '@synchro/protocol'
import { openSqliteWasm } from '../../packages/client/src/drivers/sqlite-wasm/index.js'
import { migrateToSchema } from '../../packages/client/src/schema/migrate.js'
import { createTableSql, toClientSchema } from '../../packages/client/src/schema/synced-table.js'
import { LocalDatabase, withSyncLock } from '../../packages/client/src/store/database.js'
import { applyPullGroup } from '../../packages/client/src/sync/apply.js'
import { APPLY_GROUP_ROWS } from '../../packages/client/src/sync/engine.js'
import { makeRecords, ORDERS, SCHEMA } from '../client-apply/fixture.js'

let run = 0

async function ours(records: SyncRecord[], pageSize: number): Promise<number> {
  const driver = await openSqliteWasm({
    name: `ours-${run++}.sqlite3`,
    createWorker: () => new Worker('/worker.js', { type: 'module' }),
  })
  const db = new LocalDatabase(async () => driver)
  const schema = toClientSchema(SCHEMA)
  await db.transaction((tx) => migrateToSchema(tx, schema), 'sync')
  const t0 = performance.now()
  // As SyncEngine.pullAll does with back-to-back pages: one write transaction per APPLY_GROUP_ROWS rows.
  let group: { changes: SyncRecord[]; deletes: []; checkpoint: number }[] = []
  let groupRows = 0
  for (let i = 0; i < records.length; i += pageSize) {
    const page = records.slice(i, i + pageSize)
    group.push({ changes: page, deletes: [], checkpoint: i + page.length })
    groupRows += page.length
    if (groupRows >= APPLY_GROUP_ROWS || i + pageSize >= records.length) {
      const pages = group
      group = []
      groupRows = 0
      await db.transaction((tx) => withSyncLock(tx, () => applyPullGroup(tx, schema.tables, pages)), 'sync')
    }
  }
  const ms = performance.now() - t0
  const n = await db.run((ex) => ex.all<{ n: number }>('SELECT count(*) AS n FROM orders'))
  if (n[0]?.n !== records.length) throw new Error(`ours applied ${n[0]?.n} rows, expected ${records.length}`)
  await db.close()
  return ms
}

async function raw(records: SyncRecord[]): Promise<number> {
  const cols = ORDERS.columns.map((c) => c.name)
  const w = new Worker('/raw-worker.js', { type: 'module' })
  const out = await new Promise<{ ms: number; n: number; error?: string }>((resolve) => {
    w.onmessage = (e) => resolve(e.data)
    w.postMessage({
      dir: `raw-${run++}`,
      createSql: createTableSql(toClientSchema(SCHEMA).tables.get('orders')!),
      insertSql: `INSERT INTO orders (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`,
      rows: records.map((r) => cols.map((c) => r.data[c] as unknown)),
    })
  })
  w.terminate()
  if (out.error) throw new Error(out.error)
  if (out.n !== records.length) throw new Error(`raw inserted ${out.n} rows, expected ${records.length}`)
  return out.ms
}

async function bench(rows: number, pageSize: number, runs: number) {
  const records = makeRecords(rows)
  await ours(records.slice(0, 2000), pageSize) // warm-up: JIT, wasm, OPFS
  await raw(records.slice(0, 2000))
  const oursMs: number[] = []
  const rawMs: number[] = []
  for (let i = 0; i < runs; i++) {
    rawMs.push(await raw(records))
    oursMs.push(await ours(records, pageSize))
  }
  return { oursMs, rawMs }
}

;(window as unknown as { bench: typeof bench }).bench = bench
