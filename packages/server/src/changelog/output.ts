import type { ChangelogOp } from '@synchro/protocol'
import type { ChangeSink } from '../buckets/edges.js'
import type { RowChange } from './changes.js'
import { CopyBuffer, copyText } from './copy.js'

/** The changelog/failures rows one batch produces, in order. Changelog rows go straight into COPY text. */
export class BatchOutput implements ChangeSink {
  /** Changelog rows in COPY text format (bucket_id, table_name, record_id, operation), WAL order. */
  readonly cl = new CopyBuffer()
  clRows = 0
  /** Buckets that get changelog rows (for the commit-time NOTIFY). */
  readonly buckets = new Set<string>()
  readonly fTable: string[] = []
  readonly fRecord: string[] = []
  readonly fOp: number[] = []
  readonly fError: string[] = []
  readonly fPayload: string[] = []

  #table = ''
  #tableText = ''

  emit(bucket: string, table: string, id: string, op: ChangelogOp): void {
    if (table !== this.#table) {
      this.#table = table
      this.#tableText = copyText(table)
    }
    this.cl.add(`${copyText(bucket)}\t${this.#tableText}\t${copyText(id)}\t${op}\n`)
    this.clRows++
    this.buckets.add(bucket)
  }

  fail(c: RowChange, op: ChangelogOp, error: string): void {
    this.fTable.push(c.table.tableName)
    this.fRecord.push(c.id)
    this.fOp.push(op)
    this.fError.push(error)
    this.fPayload.push(JSON.stringify(c.row))
  }
}
