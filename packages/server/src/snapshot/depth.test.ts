import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { jsonTextDeeperThan } from '../pull/record.js'
import { deeperThan } from './depth.js'

describe('deeperThan', () => {
  it('answers exactly as jsonTextDeeperThan (brackets in strings included)', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 1, max: 6 }), (value, max) => {
        const text = JSON.stringify({ v: value, s: '[[{{"' })
        expect(deeperThan(text, max)).toBe(jsonTextDeeperThan(text, max))
      }),
    )
    expect(deeperThan('{"a":[[[1]]]}', 3)).toBe(true)
    expect(deeperThan('{"a":[[1]]}', 3)).toBe(false)
    expect(deeperThan('{"a":"[[[[[[","b":{}}', 3)).toBe(false)
  })
})
