import { JsonDecimal } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import type { ResolvedTable } from '../registry/registry.js'
import { sameJson, serverSetVersion } from './echo.js'
import type { Item, TableInfo } from './validate.js'

const t = {
  tableName: 'notes',
  idColumn: 'id',
  updatedAtColumn: 'updated_at',
  deletedAtColumn: 'deleted_at',
  syncColumns: ['id', 'title', 'slug', 'updated_at', 'deleted_at'],
} as unknown as ResolvedTable
const info = { t, synced: new Set(t.syncColumns) } as unknown as TableInfo
const item = (data: { [k: string]: unknown }): Item =>
  ({ index: 0, rec: { id: 'A1' }, op: 'update', info, key: 'a1', data }) as unknown as Item

describe('serverSetVersion', () => {
  const stored = JSON.stringify({
    id: 'a1',
    title: 'Hi',
    slug: 'hi',
    secret: 'x',
    updated_at: '2026-01-01T00:00:00+00:00',
    deleted_at: null,
  })

  it('omitted when every synced column equals what was pushed (stamps and unsynced columns not compared)', () => {
    expect(
      serverSetVersion(
        item({ id: 'a1', title: 'Hi', slug: 'hi', updated_at: 'old' }),
        stored,
        '2026-01-01T00:00:00.000000Z',
      ),
    ).toBeUndefined()
  })

  it('the synced row when the server set or changed a column', () => {
    const sv = serverSetVersion(item({ id: 'a1', title: 'Hi' }), stored, '2026-01-01T00:00:00.500000Z')
    expect(sv).toEqual({
      id: 'a1',
      table_name: 'notes',
      updated_at: '2026-01-01T00:00:00.5Z',
      data: { id: 'a1', title: 'Hi', slug: 'hi', updated_at: '2026-01-01T00:00:00+00:00', deleted_at: null },
    })
    expect(serverSetVersion(item({ id: 'a1', title: 'Hi', slug: 'HI' }), stored, '2026-01-01T00:00:00Z')).toBeDefined()
  })

  it('reads numbers exactly, whether the row was compared or only rendered', () => {
    const big = '{"id":"a1","title":12345678901234567890,"slug":"s","updated_at":"t","deleted_at":null}'
    // A synced column missing from data: the answer without a comparison, data parsed when read.
    expect(serverSetVersion(item({ id: 'a1', title: 1 }), big, '2026-01-01T00:00:00Z')?.data.title).toBe(
      12345678901234567890n,
    )
    // Every synced column sent: compared by exact text.
    expect(serverSetVersion(item({ id: 'a1', title: 12345678901234567890n, slug: 's' }), big, 'x')).toBeUndefined()
    expect(serverSetVersion(item({ id: 'a1', title: 12345678901234567891n, slug: 's' }), big, 'x')).toBeDefined()
  })
})

describe('sameJson', () => {
  it('objects in any key order, arrays in order, numbers by exact text', () => {
    expect(sameJson({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 })).toBe(true)
    expect(sameJson([1, 2], [2, 1])).toBe(false)
    expect(sameJson({ a: 1 }, { a: 1, b: null })).toBe(false)
    expect(sameJson(9007199254740993n, 9007199254740993n)).toBe(true)
    expect(sameJson(new JsonDecimal('1.50'), new JsonDecimal('1.50'))).toBe(true)
    expect(sameJson(new JsonDecimal('1.50'), 1.5)).toBe(false)
    expect(sameJson('1', 1)).toBe(false)
    expect(sameJson(null, null)).toBe(true)
    expect(sameJson(null, {})).toBe(false)
  })
})
