import { OP_INSERT, type SnapshotResponse, type SyncRecord } from '@synchro/protocol'
import type { EngineContext } from '../core/context.js'
import { jsonTextDeeperThan } from '../limits/limits.js'
import { textRecord, wireRecord } from '../pull/record.js'
import type { Unrenderable } from '../pull/rows.js'
import { wirePageUpdatedAt } from '../pull/rows.js'
import { lazyRecords, unreadRecords, WireRun } from '../pull/segments.js'
import type { ResolvedTable } from '../registry/registry.js'
import { BlockRow, blockId, blockStamp } from './block.js'
import type { RecordBytes } from './convert.js'
import type { TextRow } from './readahead.js'

/** A segment of a snapshot page: a run of a converted block's rows, or the record of a row read as text. */
type PageSegment = WireRun<RecordBytes> | SyncRecord

/**
 * The records of a page so far, as segments (pull/segments.ts: a page of converted rows is a few runs, no object per
 * row), how many, and the rows left out of it.
 */
export interface PageRecords {
  segments: PageSegment[]
  count: number
  unrenderable: Unrenderable[]
}

/** Appends the records of `rows` (of table `t`) to `page`. */
export function addRecords(ctx: EngineContext, t: ResolvedTable, rows: readonly TextRow[], page: PageRecords): void {
  const { segments } = page
  for (const row of rows) {
    if (row instanceof BlockRow) {
      if (row.deep) {
        page.unrenderable.push({ table: t.tableName, id: row.id, operation: OP_INSERT })
        continue
      }
      const last = segments[segments.length - 1]
      // The next row of the last run's block extends it; a row left out (deep) ends it.
      if (last instanceof WireRun && last.wire === row.block && last.to === row.index && last.tableName === t.tableName)
        last.to++
      else segments.push(new WireRun(row.block, row.index, row.index + 1, t.tableName))
      page.count++
      continue
    }
    // Decision 35: a row too deeply nested to render is left out (and recorded), never fails the page.
    if (jsonTextDeeperThan(row.data, ctx.limits.maxJsonDepth)) {
      page.unrenderable.push({ table: t.tableName, id: row.id, operation: OP_INSERT })
      continue
    }
    segments.push(textRecord(row.id, t.tableName, row.data, wirePageUpdatedAt(row)))
    page.count++
  }
}

/** Empties `page` (its rows were rendered under another contract). */
export function clearRecords(page: PageRecords): void {
  page.segments.length = 0
  page.count = 0
  page.unrenderable.length = 0
}

/**
 * Sets `res.records` to the records of `page`: when it holds runs, records built only when read (`lazyRecords`,
 * as wire records: what they were before) — the response body splices the runs' bytes unread.
 */
export function setRecords(res: SnapshotResponse, page: PageRecords): void {
  if (page.segments.some((s) => s instanceof WireRun)) lazyRecords(res, 'records', page.segments, page.count, build)
  else res.records = page.segments as SyncRecord[]
}

/** The records of `segments`. */
function build(segments: readonly PageSegment[]): SyncRecord[] {
  const records: SyncRecord[] = []
  for (const s of segments) {
    if (!(s instanceof WireRun)) {
      records.push(s)
      continue
    }
    for (let i = s.from; i < s.to; i++) {
      records.push(wireRecord(s.wire, i, blockId(s.wire, i), s.tableName, blockStamp(s.wire, i)))
    }
  }
  return records
}

/** How many records a snapshot page holds, counted without building them (see `setRecords`). */
export function snapshotRecordCount(res: SnapshotResponse): number {
  return unreadRecords(res)?.count ?? res.records.length
}
