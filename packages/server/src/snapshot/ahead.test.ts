import { describe, expect, it } from 'vitest'
import type { SchemaContract } from '../schema/contract.js'
import { takeAhead } from './ahead.js'
import { type AheadRows, type LaterChunk, type RowChunk, rowBytesOf, type TextRow } from './readahead.js'

const contract = { version: 1, hash: 'h' } as unknown as SchemaContract

function rows(from: number, n: number): TextRow[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `r${String(from + i).padStart(3, '0')}`,
    data: '{}',
    updated_at: null,
  }))
}

/** Rows r000..r(n-1) held, `pending` bringing the next `chunk`, `further` the chunk after it. */
function held(n: number, pending?: RowChunk, further?: LaterChunk): AheadRows {
  const r = rows(0, n)
  return {
    contract,
    rows: r,
    from: 0,
    exhausted: false,
    rowBytes: rowBytesOf(r),
    pending: pending && Promise.resolve(pending),
    further: further && Promise.resolve(further),
  }
}

const ids = (r: readonly TextRow[]) => r.map((x) => x.id)

describe('takeAhead', () => {
  it('appends the read under way, then the read after it when it starts exactly where the first one ended', async () => {
    const a = held(2, { rows: rows(2, 3), exhausted: false }, { after: 'r004', rows: rows(5, 3), exhausted: false })
    const first = await takeAhead(a, 4)
    expect(ids(first.rows)).toEqual(['r000', 'r001', 'r002', 'r003'])
    expect(first.rest.further).toBeUndefined()
    const second = await takeAhead(first.rest, 4)
    expect(ids(second.rows)).toEqual(['r004', 'r005', 'r006', 'r007'])
    expect(second.more).toBe(true)
  })

  it('drops the read after it when rows came or went in between (its start is not the first read’s end)', async () => {
    // A row added before r004 in the second read's snapshot: it started after r003 (overlap) / r005 (gap).
    for (const after of ['r003', 'r005']) {
      const a = held(2, { rows: rows(2, 3), exhausted: false }, { after, rows: rows(6, 3), exhausted: false })
      const first = await takeAhead(a, 4)
      const second = await takeAhead(first.rest, 4)
      expect(ids(second.rows)).toEqual(['r004']) // what is held; the database serves the rest of the page
      expect(second.more).toBe(true)
      expect(second.rest.pending).toBeUndefined()
    }
  })

  it('a first read that failed or reached the end of the table drops the read after it', async () => {
    const failed = { ...held(2), pending: Promise.resolve(undefined), further: Promise.resolve(undefined) }
    const f = await takeAhead(failed, 4)
    expect(ids(f.rows)).toEqual(['r000', 'r001'])
    expect([f.rest.pending, f.rest.further, f.more]).toEqual([undefined, undefined, true])

    const end = held(2, { rows: rows(2, 1), exhausted: true }, { after: 'r002', rows: rows(3, 3), exhausted: false })
    const e = await takeAhead(end, 10)
    expect(ids(e.rows)).toEqual(['r000', 'r001', 'r002'])
    expect([e.rest.pending, e.more]).toEqual([undefined, false])
  })
})
