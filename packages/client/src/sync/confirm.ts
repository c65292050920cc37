/**
 * Confirmation: promises that settle when the server has answered a write. Every local write takes the next value
 * of a durable counter (`write_seq`, stored on its queue entry), so a waiter knows exactly which write it waits for:
 * the push path reports each answered entry with its `write_seq`, and an entry rewritten during the request still
 * settles the writes it carried. State lives in the database (queue, rejections), so a new process can ask again
 * after a restart; waiters of a closed client reject with `ClosedError` instead of hanging.
 */
import type { SqliteExecutor } from '../driver.js'
import { ClosedError, WriteRejectedError } from '../errors.js'
import { queueKey } from './push.js'
import { currentRejection, type Rejection } from './rejections.js'

/** One answered queue entry: every write of the record up to `writeSeq` is on the server, or rejected. */
export interface Settled {
  table: string
  recordID: string
  writeSeq: number
  rejection: Rejection | null
}

/**
 * What a caller waits for (never a bare promise: returned from inside `db.run`, a promise would be adopted and hold
 * the database mutex until it settled).
 */
export interface Wait {
  done?: Promise<void>
  rejection?: Rejection
}

/** Settles `w` for the caller: the wait, the known rejection, or nothing left to wait for. */
export function awaitWait(w: Wait): Promise<void> {
  if (w.rejection) return Promise.reject(new WriteRejectedError(w.rejection))
  return w.done ?? Promise.resolve()
}

interface Waiter {
  seq: number
  /** `confirm` rejects on a rejection; `flush` only waits for an answer. */
  kind: 'confirm' | 'flush'
  resolve: () => void
  reject: (err: unknown) => void
}

export class Confirmations {
  private readonly waiters = new Map<string, Set<Waiter>>()
  private closed = false

  /**
   * Must run under the database mutex (inside `db.run`), so that no push result can be applied between reading the
   * queue and registering the waiter.
   */
  async confirmed(ex: SqliteExecutor, table: string, recordID: string): Promise<Wait> {
    const rows = await ex.all<{ write_seq: number }>(
      'SELECT write_seq FROM _synchro_pending_changes WHERE table_name = ? AND record_id = ?',
      [table, recordID],
    )
    if (rows[0]) return { done: this.wait(table, recordID, Number(rows[0].write_seq), 'confirm') }
    const rejection = await currentRejection(ex, table, recordID)
    return rejection ? { rejection } : {}
  }

  /** Waits for an answer to every write queued now (same mutex rule as `confirmed`). */
  async flush(ex: SqliteExecutor): Promise<Wait> {
    const rows = await ex.all<{ table_name: string; record_id: string; write_seq: number }>(
      'SELECT table_name, record_id, write_seq FROM _synchro_pending_changes',
    )
    const all = rows.map((r) => this.wait(r.table_name, r.record_id, Number(r.write_seq), 'flush'))
    return { done: Promise.all(all).then(() => {}) }
  }

  private wait(table: string, recordID: string, seq: number, kind: Waiter['kind']): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError())
    return new Promise<void>((resolve, reject) => {
      const key = queueKey(table, recordID)
      let set = this.waiters.get(key)
      if (!set) {
        set = new Set()
        this.waiters.set(key, set)
      }
      set.add({ seq, kind, resolve, reject })
    })
  }

  get waiting(): boolean {
    return this.waiters.size > 0
  }

  /**
   * Settles waiters from the durable state alone, for a tab that does not run the sync engine (it sees the queue
   * change but not the push answers): a record no longer queued is answered — rejected when it has a current
   * rejection, applied otherwise.
   */
  async recheck(ex: SqliteExecutor): Promise<void> {
    const settled: Settled[] = []
    for (const key of this.waiters.keys()) {
      const [table, recordID] = key.split('\u0000') as [string, string]
      const queued = await ex.all('SELECT 1 FROM _synchro_pending_changes WHERE table_name = ? AND record_id = ?', [
        table,
        recordID,
      ])
      if (queued.length > 0) continue
      const rejection = await currentRejection(ex, table, recordID)
      settled.push({ table, recordID, writeSeq: Number.MAX_SAFE_INTEGER, rejection })
    }
    this.settle(settled)
  }

  /** Called after the push transaction committed. */
  settle(list: readonly Settled[]): void {
    for (const s of list) {
      const key = queueKey(s.table, s.recordID)
      const set = this.waiters.get(key)
      if (!set) continue
      for (const w of [...set]) {
        if (w.seq > s.writeSeq) continue
        set.delete(w)
        if (s.rejection && w.kind === 'confirm') w.reject(new WriteRejectedError(s.rejection))
        else w.resolve()
      }
      if (set.size === 0) this.waiters.delete(key)
    }
  }

  /** Rejects every waiter (the client was closed); later calls reject at once. */
  close(): void {
    this.closed = true
    for (const set of this.waiters.values()) for (const w of set) w.reject(new ClosedError())
    this.waiters.clear()
  }
}
