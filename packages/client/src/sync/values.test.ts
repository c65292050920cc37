import { JsonDecimal, type SchemaColumn } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import { sqliteColumnType } from '../schema/synced-table.js'
import { sameWireValue, sqliteToWire, wireToSqlite } from './values.js'

function col(name: string, logical_type: SchemaColumn['logical_type'], db_type: string): SchemaColumn {
  return { name, db_type, logical_type, nullable: true, default_kind: 'none', is_primary_key: false }
}

describe('exact numbers between the wire and SQLite', () => {
  it('stores int64 beyond 2^53 as bigint and numerics beyond a double as their exact text', () => {
    expect(wireToSqlite('int64', 2n ** 63n - 1n)).toBe(2n ** 63n - 1n)
    expect(wireToSqlite('float', new JsonDecimal('1.000000000000000000001'))).toBe('1.000000000000000000001')
    expect(wireToSqlite('float', 10n ** 39n)).toBe(`1${'0'.repeat(39)}`)
    expect(wireToSqlite('json', { n: 12345678901234567890n, d: new JsonDecimal('0.1000000000000000000001') })).toBe(
      '{"n":12345678901234567890,"d":0.1000000000000000000001}',
    )
  })

  it('reads them back as exact wire values', () => {
    expect(sqliteToWire(col('b', 'int64', 'bigint'), '-9223372036854775808')).toBe(-9223372036854775808n)
    expect(sqliteToWire(col('b', 'int64', 'bigint'), '42')).toBe(42)
    expect(sqliteToWire(col('n', 'float', 'numeric'), '1.000000000000000000001')).toEqual(
      new JsonDecimal('1.000000000000000000001'),
    )
    expect(sqliteToWire(col('n', 'float', 'numeric'), 2.5)).toBe(2.5)
    expect(sqliteToWire(col('j', 'json', 'jsonb'), '{"n":12345678901234567890}')).toEqual({ n: 12345678901234567890n })
  })

  it('gives numerics wider than a double no affinity, the others REAL', () => {
    expect(sqliteColumnType(col('a', 'float', 'numeric'))).toBe('')
    expect(sqliteColumnType(col('a', 'float', 'numeric(40,0)'))).toBe('')
    expect(sqliteColumnType(col('a', 'float', 'decimal(16, 2)'))).toBe('')
    expect(sqliteColumnType(col('a', 'float', 'numeric(10,2)'))).toBe('REAL')
    expect(sqliteColumnType(col('a', 'float', 'double precision'))).toBe('REAL')
    expect(sqliteColumnType(col('a', 'int64', 'bigint'))).toBe('INTEGER')
  })
})

describe('sameWireValue', () => {
  it('compares timestamps as instants, JSON by value and numbers by their exact text', () => {
    const ts = col('t', 'datetime', 'timestamptz')
    expect(sameWireValue(ts, '2026-01-01T10:00:00.5Z', '2026-01-01T11:00:00.500000+01:00')).toBe(true)
    expect(sameWireValue(ts, '2026-01-01T10:00:00.5Z', '2026-01-01T10:00:00.500001Z')).toBe(false)
    expect(sameWireValue(ts, 'not a time', 'nor this')).toBe(false)
    const j = col('j', 'json', 'jsonb')
    expect(sameWireValue(j, { b: [1, { c: null }], a: 'x' }, { a: 'x', b: [1, { c: null }] })).toBe(true)
    expect(sameWireValue(j, { a: 1 }, { a: 1, b: null })).toBe(false)
    expect(sameWireValue(j, [1, 2], { 0: 1, 1: 2 })).toBe(false)
    const n = col('n', 'int64', 'bigint')
    expect(sameWireValue(n, 12345678901234567890n, 12345678901234567890n)).toBe(true)
    expect(sameWireValue(n, 12345678901234567890n, 12345678901234567891n)).toBe(false)
    expect(sameWireValue(col('d', 'float', 'numeric'), new JsonDecimal('0.1000000000000000000001'), 0.1)).toBe(false)
    expect(sameWireValue(col('s', 'string', 'text'), '1', 1)).toBe(false)
  })
})
