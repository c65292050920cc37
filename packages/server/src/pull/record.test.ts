import { parseJsonLossless, stringifyJsonLossless } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import { jsonTextDeeperThan, nestedDeeperThan } from '../limits/limits.js'
import { renderJson, renderJsonBytes, textRecord } from './record.js'

const DATA =
  '{"id": 7, "big": 12345678901234567890, "num": 3.14159265358979323846, "s": "a\\"{[\\\\", "j": {"k": [1, {"x": null}]}}'

describe('page records (row JSON text passed through)', () => {
  it('data reads as the exact parsed object; spread, JSON and deep equality see a plain record', () => {
    const r = textRecord('r1', 'orders', DATA, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z')
    const plain = {
      id: 'r1',
      table_name: 'orders',
      data: parseJsonLossless(DATA),
      updated_at: '2026-01-01T00:00:00Z',
      deleted_at: '2026-01-02T00:00:00Z',
    }
    expect(r).toEqual(plain)
    expect({ ...r }).toEqual(plain)
    expect(Object.keys(r)).toEqual(['id', 'table_name', 'data', 'updated_at', 'deleted_at'])
    expect(r.data.big).toBe(12345678901234567890n)
    expect(r.data).toBe(r.data) // parsed once
    expect(stringifyJsonLossless(r)).toBe(stringifyJsonLossless(plain))
  })

  it('records are plain objects sharing one data getter; copies and clones carry no text', () => {
    const a = textRecord('a', 'orders', DATA, '2026-01-01T00:00:00Z')
    const b = textRecord('b', 'orders', '{"x":1}', '2026-01-01T00:00:00Z')
    const plain = { id: 'b', table_name: 'orders', data: { x: 1 }, updated_at: '2026-01-01T00:00:00Z' }
    expect(Object.getPrototypeOf(b)).toBe(Object.prototype)
    expect(b).toStrictEqual(plain)
    expect(structuredClone(b)).toStrictEqual(plain)
    const da = Object.getOwnPropertyDescriptor(a, 'data')
    const db = Object.getOwnPropertyDescriptor(b, 'data')
    expect(da).toMatchObject({ enumerable: true, configurable: true, set: undefined })
    // One getter for all records: they share a hidden class instead of each being a dictionary-mode object.
    expect(da?.get).toBe(db?.get)
    expect(Object.create(b).data).toEqual({ x: 1 })
    // A copy with its own data renders that data, not the text the original was made from.
    const copy = { ...b, data: { x: 2 } }
    expect(renderJson({ records: [b, copy] })).toBe(
      '{"records":[{"id":"b","table_name":"orders","data":{"x":1},"updated_at":"2026-01-01T00:00:00Z"},' +
        '{"id":"b","table_name":"orders","data":{"x":2},"updated_at":"2026-01-01T00:00:00Z"}]}',
    )
  })

  it('renderJson splices the text: same value as rendering the parsed records, numbers exact, envelope intact', () => {
    const records = [
      textRecord('a"b', 'orders', DATA, '2026-01-01T00:00:00.5Z'),
      textRecord('r2', 'orders', '{}', '2026-01-01T00:00:00Z', '2026-01-03T00:00:00Z'),
      textRecord('r3', 'odd "table"', '{"a":1}', '2026-01-01T00:00:00Z'),
      textRecord('r4', 'orders', '{"a":2}', '2026-01-01T00:00:00Z'),
    ]
    const body = { records, checkpoint: 5, has_more: true, cursor: { checkpoint: 5, table_idx: 0, after_id: 'r2' } }
    const text = renderJson(body)
    expect(text).toContain('"big": 12345678901234567890')
    expect(parseJsonLossless(text)).toEqual(parseJsonLossless(stringifyJsonLossless(body)))
    expect(Object.keys(parseJsonLossless(text) as object)).toEqual(['records', 'checkpoint', 'has_more', 'cursor'])
    // Bodies without page records render as before.
    expect(renderJson({ changes: [], n: 1n })).toBe('{"changes":[],"n":1}')
    expect(renderJson([1, 2])).toBe('[1,2]')
  })

  it('renderJsonBytes is renderJson in UTF-8, across chunks and when the text outgrows the expected size', () => {
    const wide = '{"s": "ü😀€ \\u0000 \\" ok", "n": 1}'
    const bodies: unknown[] = [
      { error: 'x' },
      [1, 2],
      { records: [textRecord('a', 'orders', DATA, '2026-01-01T00:00:00Z')], checkpoint: 1n },
      {
        changes: Array.from({ length: 3000 }, (_, i) =>
          textRecord(`id-${i}"é`, 'orders', i % 2 ? wide : DATA, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
        ),
        deletes: [{ id: 'd', table_name: 'orders' }],
        checkpoint: 9,
      },
      // Nearly all 3-byte characters: the buffer sized from the text length grows.
      { records: Array.from({ length: 500 }, (_, i) => textRecord(`${i}`, 't', `{"x":"${'€'.repeat(300)}"}`, 'u')) },
    ]
    for (const body of bodies) {
      expect(Buffer.from(renderJsonBytes(body)).toString('utf8')).toBe(renderJson(body))
    }
  })

  it('jsonTextDeeperThan agrees with nestedDeeperThan, brackets inside strings ignored', () => {
    const texts = [
      DATA,
      '{}',
      '[[[]]]',
      '{"a":"[[[[[[[[[["}',
      '{"a":"\\\\","b":[[["x"]]]}',
      `{"d":${'['.repeat(70)}${']'.repeat(70)}}`,
      `{"d":${'{"k":'.repeat(63)}1${'}'.repeat(63)}}`,
      `{"d":${'{"k":'.repeat(64)}1${'}'.repeat(64)}}`,
    ]
    for (const t of texts) {
      for (const max of [1, 2, 3, 64]) {
        expect(jsonTextDeeperThan(t, max), `${t.slice(0, 40)} @${max}`).toBe(nestedDeeperThan(JSON.parse(t), max))
      }
    }
  })
})
