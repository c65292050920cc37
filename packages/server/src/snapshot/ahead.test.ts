import { describe, expect, it } from 'vitest'
import type { SchemaContract } from '../schema/contract.js'
import { takeAhead } from './ahead.js'
import { type AheadRows, type BackgroundRead, type RowChunk, rowBytesOf, type TextRow } from './readahead.js'

const contract = { version: 1, hash: 'h' } as unknown as SchemaContract

function rows(from: number, n: number): TextRow[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `r${String(from + i).padStart(3, '0')}`,
    data: '{}',
    updated_at: null,
  }))
}

const done = (chunk: RowChunk | undefined, bound: string | null = null): BackgroundRead => ({
  bound: Promise.resolve(bound),
  chunk: Promise.resolve(chunk),
})

/** Rows r000..r(n-1) held, `pending` bringing the next rows, `further` the rows after those. */
function held(n: number, pending?: BackgroundRead, further?: BackgroundRead): AheadRows {
  const r = rows(0, n)
  return { contract, rows: r, from: 0, exhausted: false, rowBytes: rowBytesOf(r), pending, further }
}

const ids = (r: readonly TextRow[]) => r.map((x) => x.id)

describe('takeAhead', () => {
  it('appends the read under way, then the read after it (it starts at the first one’s bound)', async () => {
    // The first range held fewer live rows than its bound allowed (rows deleted in it): the next still follows on.
    const a = held(
      2,
      done({ rows: rows(2, 2), exhausted: false }, 'r006'),
      done({ rows: rows(7, 3), exhausted: false }),
    )
    const first = await takeAhead(a, 4)
    expect(ids(first.rows)).toEqual(['r000', 'r001', 'r002', 'r003'])
    expect(first.rest.further).toBeUndefined()
    const second = await takeAhead(first.rest, 4)
    expect(ids(second.rows)).toEqual(['r007', 'r008', 'r009'])
    expect(second.more).toBe(true)
  })

  it('a read cut short of its bound (rows added meanwhile) drops the read after it', async () => {
    const a = held(
      2,
      done({ rows: rows(2, 3), exhausted: false, cut: true }),
      done({ rows: rows(9, 3), exhausted: false }),
    )
    const first = await takeAhead(a, 4)
    const second = await takeAhead(first.rest, 4)
    expect(ids(second.rows)).toEqual(['r004']) // what is held; the database serves the rest of the page
    expect(second.more).toBe(true)
    expect(second.rest.pending).toBeUndefined()
  })

  it('a first read that failed or reached the end of the table drops the read after it', async () => {
    const f = await takeAhead(held(2, done(undefined), done({ rows: rows(5, 1), exhausted: false })), 4)
    expect(ids(f.rows)).toEqual(['r000', 'r001'])
    expect([f.rest.pending, f.rest.further, f.more]).toEqual([undefined, undefined, true])

    const e = await takeAhead(held(2, done({ rows: rows(2, 1), exhausted: true }), done(undefined)), 10)
    expect(ids(e.rows)).toEqual(['r000', 'r001', 'r002'])
    expect([e.more, e.rest.pending]).toEqual([false, undefined])
  })
})
