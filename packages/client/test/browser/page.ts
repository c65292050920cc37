/**
 * The test page: opens drivers and clients on request of the test process (through `page.evaluate`) and keeps
 * them in `window.synchroTest`. Arguments and results cross as JSON (see codec.ts).
 */
import { SynchroClient } from '../../src/client.js'
import type { SynchroClientConfig } from '../../src/config.js'
import type { SqliteDriver, SqliteExecutor } from '../../src/driver.js'
import { openSqliteWasm } from '../../src/drivers/sqlite-wasm/index.js'
import { decode, encode } from './codec.js'

const drivers = new Map<number, SqliteDriver>()
const txs = new Map<number, { ex: SqliteExecutor; end: (err?: Error) => void; done: Promise<unknown> }>()
let next = 1
let client: SynchroClient | null = null
const watched: Record<string, unknown[]> = {}

type ExMethod = 'all' | 'run' | 'exec' | 'runMany'
const createWorker = () => new Worker('/worker.js', { type: 'module' })

async function onEx(ex: SqliteExecutor, m: ExMethod, args: unknown[]): Promise<unknown> {
  const a = decode(args) as [string, never]
  if (m === 'runMany' && !ex.runMany) throw new Error('no runMany')
  return encode(await (ex[m] as (...x: unknown[]) => Promise<unknown>)(...a))
}

const api = {
  async openDriver(name: string): Promise<number> {
    const d = await openSqliteWasm({ name, createWorker })
    const id = next++
    drivers.set(id, d)
    return id
  },
  drv: (id: number, m: ExMethod, args: unknown[]) => onEx(drivers.get(id)!, m, args),
  /** Opens a transaction and keeps it open until `txEnd`. */
  async txBegin(id: number): Promise<number> {
    const tid = next++
    await new Promise<void>((began) => {
      let end!: (err?: Error) => void
      const finished = new Promise<void>((res, rej) => {
        end = (err) => (err ? rej(err) : res())
      })
      const done = drivers.get(id)!.transaction(async (ex) => {
        txs.set(tid, { ex, end, done })
        began()
        await finished
        return 'committed'
      })
      done.catch(() => {})
    })
    return tid
  },
  tx: (tid: number, m: ExMethod, args: unknown[]) => onEx(txs.get(tid)!.ex, m, args),
  async txEnd(tid: number, error?: string): Promise<{ ok?: unknown; error?: string }> {
    const t = txs.get(tid)!
    txs.delete(tid)
    t.end(error ? new Error(error) : undefined)
    return t.done.then(
      (v) => ({ ok: v }),
      (e: Error) => ({ error: e.message }),
    )
  },
  async closeDriver(id: number): Promise<void> {
    await drivers.get(id)?.close()
    drivers.delete(id)
  },

  async startClient(cfg: Omit<SynchroClientConfig, 'driver'> & { name: string; start?: boolean }): Promise<void> {
    const driver = await openSqliteWasm({ name: cfg.name, createWorker })
    client = new SynchroClient({ ...cfg, driver })
    if (cfg.start === false) return
    await client.start()
    // start() returns once the database is open; tests write right away, so wait for a first cycle (as before).
    await client.syncNow().catch(() => {})
  },
  async client(m: string, args: unknown[] = []): Promise<unknown> {
    const c = client as unknown as Record<string, (...a: unknown[]) => unknown>
    return encode(await c[m]!.apply(client, decode(args) as unknown[]))
  },
  watch(key: string, sql: string, tables: string[]): void {
    client!.watch(sql, [], tables, (rows) => {
      watched[key] = rows
    })
  },
  watched: (key: string) => encode(watched[key] ?? null),
  status: () => ({
    status: client?.status.status,
    error: client?.status.error?.message,
    owner: Boolean((client as unknown as { tabs?: { isOwner: boolean } } | null)?.tabs?.isOwner),
  }),
  async closeClient(): Promise<void> {
    await client?.close()
    client = null
  },
}

declare global {
  interface Window {
    synchroTest: typeof api
  }
}
window.synchroTest = api
