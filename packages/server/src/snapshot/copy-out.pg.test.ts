import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { copyOut } from './copy-out.js'

// copyOut hands each COPY's text to its callback in a buffer that the next reads reuse: what a callback sees is that
// COPY's text and nothing else, whatever ran before it or beside it.
let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase('copy_out')
})
afterAll(async () => {
  await db.drop()
})

const rows = (n: number, tag: string) => `COPY (SELECT '${tag}' || g FROM generate_series(1, ${n}) g) TO STDOUT`
const expected = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}${i + 1}\n`).join('')
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8')

describe('copyOut', () => {
  it('gives each read its own text: a small read after a large one, reads at the same time, a failed read', async () => {
    const a = await db.pool.connect()
    const b = await db.pool.connect()
    try {
      // 200k rows (≈ 1.6 MB) grow the buffer past its first size; the next read reuses it for 3 rows.
      expect(await copyOut(a, rows(200_000, 'big'), text)).toBe(expected(200_000, 'big'))
      expect(await copyOut(a, rows(3, 's'), text)).toBe(expected(3, 's'))
      const both = await Promise.all([copyOut(a, rows(50_000, 'x'), text), copyOut(b, rows(70_000, 'y'), text)])
      expect(both).toEqual([expected(50_000, 'x'), expected(70_000, 'y')])
      await expect(copyOut(a, 'COPY (SELECT 1/0) TO STDOUT', text)).rejects.toThrow(/division by zero/)
      expect(await copyOut(a, rows(2, 'after'), text)).toBe(expected(2, 'after'))
      // The callback's result is what copyOut resolves to; its error is copyOut's.
      expect(await copyOut(b, rows(4, 'n'), (t) => t.length)).toBe(expected(4, 'n').length)
      const fails = () => {
        throw new Error('use failed')
      }
      await expect(copyOut(b, rows(1, 'e'), fails)).rejects.toThrow(/use failed/)
      expect(await copyOut(b, rows(2, 'then'), text)).toBe(expected(2, 'then'))
    } finally {
      a.release()
      b.release()
    }
  })
})
