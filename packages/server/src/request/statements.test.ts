import { describe, expect, it } from 'vitest'
import { outgrown } from './statements.js'

describe('outgrown', () => {
  it('true once a relation is more than twice its planned size plus 64 KiB; shrinking never', () => {
    expect(outgrown([0, 8192], [65_536, 8192])).toBe(false)
    expect(outgrown([0, 8192], [65_537, 8192])).toBe(true)
    expect(outgrown([1_000_000, 8192], [2_065_536, 8192])).toBe(false)
    expect(outgrown([1_000_000, 8192], [2_065_537, 0])).toBe(true)
    expect(outgrown([1_000_000, 8192], [0, 0])).toBe(false)
  })
})
