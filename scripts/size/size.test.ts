import { describe, expect, it } from 'vitest'
import { BODY_LIMIT, FILE_LIMIT, findOversize, ONE_PIECE } from './size.js'

describe('small rooms', () => {
  it(`package sources stay under ${FILE_LIMIT} lines a file and ${BODY_LIMIT} lines a function or class body`, () => {
    const oversize = findOversize().map((o) => `${o.file}: ${o.kind} ${o.name} is ${o.lines} lines`)
    // A body that must stay whole says why in the comment above it, starting with the marker (ONE_PIECE).
    expect(ONE_PIECE).toBe('one piece:')
    expect(oversize).toEqual([])
  })
})
