import { describe, expect, it } from 'vitest'
import { JsonDecimal, parseJsonLossless, stringifyJsonLossless } from './json.js'

describe('parseJsonLossless', () => {
  it('keeps integers beyond 2^53 as bigint and long decimals as JsonDecimal', () => {
    const v = parseJsonLossless('{"a":9007199254740993,"b":[-9223372036854775808,1.5],"c":3.14159265358979323846}')
    expect(v).toEqual({
      a: 9007199254740993n,
      b: [-9223372036854775808n, 1.5],
      c: new JsonDecimal('3.14159265358979323846'),
    })
  })

  it('gives plain numbers for what a double holds exactly', () => {
    expect(parseJsonLossless('[1, -2.5, 1e2, 0.1, 9007199254740991, 123456789012345]')).toEqual([
      1, -2.5, 100, 0.1, 9007199254740991, 123456789012345,
    ])
    // 16+ digits anywhere send the text through the exact parser: it must agree with JSON.parse on the rest.
    const text = '{"s":"1234567890123456789 \\" \\u00e9","n":null,"t":true,"f":false,"o":{},"a":[],"x":0.5}'
    expect(parseJsonLossless(text)).toEqual(JSON.parse(text))
  })

  it('renders what a double cannot hold back to its exact text, the rest as JSON.stringify does', () => {
    const exact = ['9007199254740993', '-9223372036854775808', '9223372036854775807', '12345678901234567890']
    exact.push('1234567890123456789012345678901234567890', '3.1415926535897932384626433832795028')
    exact.push('1e-400', '1e400', '4.9e-324', '12345678901234567890.0')
    for (const lit of exact) expect(stringifyJsonLossless(parseJsonLossless(lit))).toBe(lit)
    for (const lit of ['0.1', '-0', '1e2', '1.50', '-12.25e-3', '9007199254740991']) {
      expect(stringifyJsonLossless(parseJsonLossless(lit))).toBe(JSON.stringify(JSON.parse(lit)))
    }
  })

  it('rejects invalid JSON and trailing content unless asked for the first value', () => {
    const slow = ['[12345678901234567890, "\u0001"]', '[12345678901234567890, "a\\q"]', '[12345678901234567890,]']
    for (const bad of [
      '',
      '{',
      '[1,]',
      '{"a" 1}',
      '01',
      '"\u0001"',
      '12345678901234567890 x',
      'nul',
      '"abc',
      ...slow,
    ]) {
      expect(() => parseJsonLossless(bad), bad).toThrow(SyntaxError)
    }
    expect(parseJsonLossless('{"a":12345678901234567890} trailing', { firstValueOnly: true })).toEqual({
      a: 12345678901234567890n,
    })
    expect(parseJsonLossless('{"a":1} {"b":2}', { firstValueOnly: true })).toEqual({ a: 1 })
  })

  it('keeps a "__proto__" key as data', () => {
    const v = parseJsonLossless('{"__proto__":{"x":12345678901234567890}}') as { [k: string]: unknown }
    expect(Object.keys(v)).toEqual(['__proto__'])
    expect(({} as { x?: unknown }).x).toBeUndefined()
  })
})

describe('stringifyJsonLossless', () => {
  it('renders bigints and decimals as JSON numbers', () => {
    const out = stringifyJsonLossless({ a: 2n ** 63n - 1n, b: [new JsonDecimal('1.000000000000000000001')], s: 'x' })
    expect(out).toBe('{"a":9223372036854775807,"b":[1.000000000000000000001],"s":"x"}')
  })

  it('leaves ordinary values to JSON.stringify', () => {
    const v = { a: 1, b: 'synchro-exact-', c: [null, true], d: undefined }
    expect(stringifyJsonLossless(v)).toBe(JSON.stringify(v))
  })

  it('makes plain JSON.stringify refuse a JsonDecimal instead of rounding it', () => {
    expect(() => JSON.stringify({ d: new JsonDecimal('1.0000000000000000001') })).toThrow(TypeError)
  })
})
