import type { PushRecord, PushResult } from '@synchro/protocol'
import { failureInternal } from './decide.js'
import type { RecordFailure } from './errors.js'
import type { Item } from './validate.js'

/** The per-record answers of one push, by request index. */
export class PushResults {
  readonly #results: (PushResult | undefined)[] = []

  reject(index: number, rec: PushRecord, f: RecordFailure, extra: Partial<PushResult> = {}): void {
    this.#results[index] = {
      id: rec.id,
      table_name: rec.table_name,
      operation: rec.operation,
      status: f.status,
      reason_code: f.reasonCode,
      message: f.message,
      ...extra,
    }
  }

  fail(item: Item, f: RecordFailure, extra: Partial<PushResult> = {}): void {
    this.reject(item.index, item.rec, f, extra)
  }

  applied(item: Item, extra: Partial<PushResult> = {}): void {
    this.#results[item.index] = {
      id: item.rec.id,
      table_name: item.rec.table_name,
      operation: item.rec.operation,
      status: 'applied',
      ...extra,
    }
  }

  /** Every record's answer in request order; a record left unanswered (a bug) is answered internal_error. */
  finish(changes: readonly PushRecord[]): PushResult[] {
    return changes.map((rec, i) => {
      const r = this.#results[i]
      if (r) return r
      this.reject(i, rec, failureInternal())
      return this.#results[i] as PushResult
    })
  }
}
