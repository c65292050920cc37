import { describe, expect, it } from 'vitest'
import { CopyBuffer, copyText } from './copy.js'

describe('CopyBuffer', () => {
  it('holds exactly the UTF-8 of the lines added, across flushes and growth', () => {
    const b = new CopyBuffer(16)
    expect(b.length).toBe(0)
    expect(b.bytes().length).toBe(0)
    const lines: string[] = []
    for (let i = 0; i < 3000; i++) {
      // ASCII, 2-, 3- and 4-byte characters, a lone surrogate (U+FFFD, as Buffer.from writes it), escapes.
      const line = `user:${i}\t${copyText(`é€😀\ud800 a\tb\\c\n${'x'.repeat(i % 50)}`)}\t${i % 4}\n`
      lines.push(line)
      b.add(line)
      if (i === 10) expect(b.bytes().equals(Buffer.from(lines.join('')))).toBe(true)
    }
    expect(b.length).toBeGreaterThan(0)
    expect(b.bytes().equals(Buffer.from(lines.join('')))).toBe(true)
  })
})
