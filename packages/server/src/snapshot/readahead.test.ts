import { describe, expect, it } from 'vitest'
import type { SchemaContract } from '../schema/contract.js'
import { type AheadRows, ReadAheadCache, rowBytesOf, type TextRow } from './readahead.js'

const contract = { version: 1, hash: 'h' } as unknown as SchemaContract
const cursor = (after_id: string, checkpoint = 7, table_idx = 0) => ({ checkpoint, table_idx, after_id })

function rows(n: number, from = 0): TextRow[] {
  return Array.from({ length: n }, (_, i) => ({ id: `r${from + i}`, data: '{"a":1}', updated_at: null }))
}

function ahead(n: number, from = 0): AheadRows {
  const r = rows(n, from)
  return { contract, rows: r, from: 0, exhausted: false, rowBytes: rowBytesOf(r) }
}

function cache(
  opts: Partial<{ rows: number; maxBytes: number; ttlMs: number; parallel: boolean }> = {},
  now = () => 0,
) {
  return new ReadAheadCache({ rows: 100, maxBytes: 1_000_000, ttlMs: 1000, parallel: true, ...opts }, now)
}

describe('ReadAheadCache', () => {
  it('gives the rows back only to the same user and client, for exactly the cursor they continue, once', () => {
    const c = cache()
    c.put('alice', 'phone', cursor('r0'), ahead(3, 1))
    expect(c.take('bob', 'phone', cursor('r0'))).toBeUndefined()
    expect(c.take('alice', 'tablet', cursor('r0'))).toBeUndefined()
    expect(c.size).toBe(1) // other users' and clients' lookups leave alice's entry alone
    const got = c.take('alice', 'phone', cursor('r0'))
    expect(got?.rows.map((r) => r.id)).toEqual(['r1', 'r2', 'r3'])
    expect(got?.contract).toBe(contract)
    expect(c.take('alice', 'phone', cursor('r0'))).toBeUndefined() // taken
    expect(c.bytes).toBe(0)
  })

  it('a lookup with another cursor (other after_id, table or checkpoint) drops the entry', () => {
    for (const other of [cursor('r9'), cursor('r0', 8), cursor('r0', 7, 1)]) {
      const c = cache()
      c.put('alice', 'phone', cursor('r0'), ahead(3, 1))
      expect(c.take('alice', 'phone', other)).toBeUndefined()
      expect(c.size).toBe(0)
      expect(c.take('alice', 'phone', cursor('r0'))).toBeUndefined()
    }
  })

  it('user and client ids cannot be combined into another pair’s slot', () => {
    const c = cache()
    c.put('a', 'b\u0000c', cursor('r0'), ahead(1))
    expect(c.take('a\u0000b', 'c', cursor('r0'))).toBeUndefined()
    expect(c.take('a', 'b\u0000c', cursor('r0'))).toBeDefined()
  })

  it('one entry per client: a new page’s rows replace the previous ones', () => {
    const c = cache()
    c.put('alice', 'phone', cursor('r0'), ahead(3, 1))
    c.put('alice', 'phone', cursor('r3'), ahead(3, 4))
    expect(c.size).toBe(1)
    expect(c.take('alice', 'phone', cursor('r0'))).toBeUndefined()
    c.put('alice', 'phone', cursor('r3'), ahead(3, 4))
    expect(c.take('alice', 'phone', cursor('r3'))?.rows[0]?.id).toBe('r4')
  })

  it('entries expire after ttlMs', () => {
    let now = 0
    const c = cache({ ttlMs: 1000 }, () => now)
    c.put('alice', 'phone', cursor('r0'), ahead(3))
    c.put('bob', 'phone', cursor('r0'), ahead(3))
    now = 999
    expect(c.take('alice', 'phone', cursor('r0'))).toBeDefined()
    now = 1000
    expect(c.take('bob', 'phone', cursor('r0'))).toBeUndefined()
    c.put('carol', 'phone', cursor('r0'), ahead(3))
    now = 5000
    expect(c.aheadRows()).toBe(100) // the expired entry was swept: room again
    expect(c.size).toBe(0)
    expect(c.bytes).toBe(0)
  })

  it('stays within maxBytes: the oldest entries go first, an entry larger than the cap is not kept', () => {
    const one = ahead(10).rowBytes * 10
    const c = cache({ maxBytes: one * 3 })
    for (const user of ['u1', 'u2', 'u3', 'u4']) c.put(user, 'c', cursor('r0'), ahead(10))
    expect(c.size).toBe(3)
    expect(c.bytes).toBeLessThanOrEqual(one * 3)
    expect(c.take('u1', 'c', cursor('r0'))).toBeUndefined()
    expect(c.take('u4', 'c', cursor('r0'))).toBeDefined()
    c.put('big', 'c', cursor('r0'), ahead(40))
    expect(c.take('big', 'c', cursor('r0'))).toBeUndefined()
    expect(c.bytes).toBeLessThanOrEqual(one * 3)
  })

  it('reads ahead only while less than half of maxBytes is in use; rows being read count at the configured amount', () => {
    const perRow = ahead(1).rowBytes
    const c = cache({ rows: 10, maxBytes: perRow * 40 })
    c.put('u1', 'c', cursor('r0'), ahead(10))
    expect(c.aheadRows()).toBe(10)
    const pending = { bound: Promise.resolve(null), chunk: Promise.resolve(undefined) }
    c.put('u2', 'c', cursor('r0'), { ...ahead(1), pending }) // 1 row held + 10 reserved
    expect(c.bytes).toBe(perRow * 21)
    expect(c.aheadRows()).toBe(0)
    c.take('u1', 'c', cursor('r0'))
    expect(c.aheadRows()).toBe(10)
    c.take('u2', 'c', cursor('r0'))
    c.put('u3', 'c', cursor('r0'), { ...ahead(1), pending, further: pending })
    expect(c.bytes).toBe(perRow * (1 + 10 + 10)) // a second read under way reserves its room too
  })

  it('a second read per client only while less than a quarter of maxBytes is in use, and only with parallel', () => {
    const perRow = ahead(1).rowBytes
    const c = cache({ rows: 10, maxBytes: perRow * 40 })
    expect(c.secondRead()).toBe(true)
    c.put('u1', 'c', cursor('r0'), ahead(10))
    expect([c.secondRead(), c.aheadRows()]).toEqual([false, 10])
    expect(cache({ parallel: false }).secondRead()).toBe(false)
  })

  it('served rows (before `from`) are not counted; nothing is kept when nothing is left', () => {
    const c = cache()
    const a = ahead(10)
    c.put('u', 'c', cursor('r9'), { ...a, from: 10 })
    expect(c.size).toBe(0)
    c.put('u', 'c', cursor('r4'), { ...a, from: 5 })
    expect(c.bytes).toBe(a.rowBytes * 5)
  })

  it('ttlMs 0 keeps nothing', () => {
    const c = cache({ ttlMs: 0 })
    c.put('u', 'c', cursor('r0'), ahead(3))
    expect(c.size).toBe(0)
  })
})
