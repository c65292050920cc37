import { expect, it } from 'vitest'
import { bigintToLsn, lsnToBigint } from './lsn.js'
import { decodePgoutput, UNCHANGED } from './pgoutput.js'

it('LSN text and 64-bit integers round-trip like PostgreSQL prints them', () => {
  expect(lsnToBigint('0/0')).toBe(0n)
  expect(lsnToBigint('16/B374D848')).toBe((0x16n << 32n) | 0xb374d848n)
  expect(bigintToLsn(0x16b374d848n)).toBe('16/B374D848')
  expect(bigintToLsn(lsnToBigint('FFFFFFFF/FFFFFFFF'))).toBe('FFFFFFFF/FFFFFFFF')
  expect(() => lsnToBigint('nope')).toThrow(TypeError)
})

it('decodes an update with a full old tuple, NULLs and unchanged-TOAST markers', () => {
  const tuple = (vals: (string | null | 'u')[]) => {
    const parts: Buffer[] = [Buffer.from([0, vals.length])]
    for (const v of vals) {
      if (v === null) parts.push(Buffer.from('n'))
      else if (v === 'u') parts.push(Buffer.from('u'))
      else {
        const b = Buffer.from(v)
        const len = Buffer.alloc(4)
        len.writeInt32BE(b.length)
        parts.push(Buffer.from('t'), len, b)
      }
    }
    return Buffer.concat(parts)
  }
  const rel = Buffer.alloc(4)
  rel.writeUInt32BE(42)
  const msg = Buffer.concat([
    Buffer.from('U'),
    rel,
    Buffer.from('O'),
    tuple(['1', 'big', null]),
    Buffer.from('N'),
    tuple(['1', 'u', 'x']),
  ])
  expect(decodePgoutput(msg)).toEqual({
    tag: 'update',
    relationId: 42,
    oldKind: 'O',
    oldTuple: ['1', 'big', null],
    newTuple: ['1', UNCHANGED, 'x'],
  })
})
