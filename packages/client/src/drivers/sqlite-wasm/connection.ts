/** Request/response over a tab's database worker. */
import type { Row, SqlParam } from '../../driver.js'
import { DatabaseError } from '../../errors.js'
import type { WorkerRequest, WorkerResponse } from './messages.js'

type Pending = { resolve: (r: WorkerResponse & { ok: true }) => void; reject: (e: unknown) => void }
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** A worker as this module uses it (the DOM `Worker`, or anything with the same shape). */
export interface WorkerLike {
  postMessage(msg: WorkerRequest): void
  addEventListener(type: 'message', cb: (e: MessageEvent<WorkerResponse>) => void): void
  addEventListener(type: 'error', cb: (e: ErrorEvent) => void): void
  terminate(): void
}

export class WorkerConnection {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private failure: Error | null = null

  constructor(private readonly worker: WorkerLike) {
    worker.addEventListener('message', (e) => {
      const msg = e.data
      const p = this.pending.get(msg.id)
      if (!p) return
      this.pending.delete(msg.id)
      if (msg.ok) p.resolve(msg)
      else p.reject(new DatabaseError(msg.error.message, Object.assign(new Error(msg.error.message), msg.error)))
    })
    worker.addEventListener('error', (e) => {
      // A worker that fails to load (wrong URL, wasm missing) must not leave callers waiting forever.
      this.fail(new DatabaseError(`database worker failed: ${e.message || 'could not load the worker script'}`))
    })
  }

  request(req: DistributiveOmit<WorkerRequest, 'id'>): Promise<WorkerResponse & { ok: true }> {
    if (this.failure) return Promise.reject(this.failure)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ ...req, id } as WorkerRequest)
    })
  }

  async all<T = Row>(sql: string, params?: readonly SqlParam[]): Promise<T[]> {
    return ((await this.request({ op: 'all', sql, ...(params ? { params } : {}) })).rows ?? []) as T[]
  }

  async run(sql: string, params?: readonly SqlParam[]): Promise<number> {
    return (await this.request({ op: 'run', sql, ...(params ? { params } : {}) })).changes ?? 0
  }

  fail(err: Error): void {
    this.failure ??= err
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  terminate(err: Error): void {
    this.fail(err)
    this.worker.terminate()
  }
}
