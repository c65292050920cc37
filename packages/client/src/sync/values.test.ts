import { JsonDecimal, type SchemaColumn } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import { sqliteColumnType } from '../schema/synced-table.js'
import { sqliteToWire, wireToSqlite } from './values.js'

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
