import { describe, expect, it } from 'vitest'
import { historyGap } from './reader.js'

describe('historyGap (Decisions 1, 8)', () => {
  const h = { compacted: 10, issued: 50 }
  it('serves every checkpoint from the compaction boundary up to the last issued seq', () => {
    for (const from of [10, 11, 49, 50]) expect(historyGap(from, h)).toBeUndefined()
  })
  it('below the boundary: the entries it needs were compacted', () => {
    expect(historyGap(9, h)).toBe('checkpoint_before_retention')
    expect(historyGap(0, h)).toBe('checkpoint_before_retention')
  })
  it('ahead of every seq ever issued: the database lost history', () => {
    expect(historyGap(51, h)).toBe('history_unavailable')
  })
  it('a fresh database (nothing issued, nothing compacted) serves checkpoint 0 only', () => {
    expect(historyGap(0, { compacted: 0, issued: 0 })).toBeUndefined()
    expect(historyGap(1, { compacted: 0, issued: 0 })).toBe('history_unavailable')
  })
})
