import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isRfc3339 } from './common.js'
import { decodeRequest } from './decode.js'

const pair = { schema_version: 1, schema_hash: 'h' }

describe('§1.3 validation order', () => {
  it('non-objects → invalid request body', () => {
    for (const body of ['', 'x', 'null', '[]', '"s"', '1', 'true', '{']) {
      expect(decodeRequest('pull', body)).toEqual({ ok: false, error: 'invalid request body' })
    }
  })

  it('required keys are checked in order, before types', () => {
    expect(decodeRequest('pull', '{}')).toEqual({ ok: false, error: 'client_id is required' })
    expect(decodeRequest('pull', '{"client_id":"c"}')).toEqual({ ok: false, error: 'schema_version is required' })
    expect(decodeRequest('pull', '{"client_id":"c","schema_version":"bad"}')).toEqual({
      ok: false,
      error: 'schema_hash is required',
    })
    expect(decodeRequest('snapshot', '{"schema_version":1,"schema_hash":"h"}')).toEqual({
      ok: false,
      error: 'client_id is required',
    })
    expect(decodeRequest('push', '{"schema_hash":"h"}')).toEqual({ ok: false, error: 'schema_version is required' })
    // push does not require client_id
    expect(decodeRequest('push', JSON.stringify(pair)).ok).toBe(true)
    expect(decodeRequest('register', '{"schema_version":0}')).toEqual({ ok: false, error: 'schema_hash is required' })
  })

  it('a null required key is present and becomes the zero value', () => {
    const r = decodeRequest('pull', '{"client_id":null,"schema_version":null,"schema_hash":null}')
    expect(r).toEqual({ ok: true, value: { client_id: '', schema_version: 0, schema_hash: '' } })
  })

  it('13 type errors → invalid request body', () => {
    const bad = [
      ['pull', { client_id: 'c', ...pair, checkpoint: '5' }],
      ['pull', { client_id: 'c', ...pair, limit: 1.5 }],
      ['pull', { client_id: 'c', ...pair, tables: 'orders' }],
      ['pull', { client_id: 'c', ...pair, tables: [1] }],
      ['pull', { client_id: 1, ...pair }],
      ['pull', { client_id: 'c', schema_version: 1.5, schema_hash: 'h' }],
      ['pull', { client_id: 'c', schema_version: 1, schema_hash: {} }],
      [
        'push',
        { ...pair, changes: [{ id: 'x', table_name: 't', operation: 'create', client_updated_at: 'yesterday' }] },
      ],
      [
        'push',
        {
          ...pair,
          changes: [{ id: 'x', table_name: 't', operation: 'create', base_updated_at: '2026-01-01 10:00:00' }],
        },
      ],
      ['push', { ...pair, changes: {} }],
      ['push', { ...pair, changes: [1] }],
      ['snapshot', { client_id: 'c', ...pair, cursor: { checkpoint: 'x' } }],
      ['snapshot', { client_id: 'c', ...pair, cursor: [] }],
      ['register', { ...pair, client_name: 5 }],
    ] as const
    for (const [endpoint, body] of bad) {
      expect(decodeRequest(endpoint, JSON.stringify(body)), JSON.stringify(body)).toEqual({
        ok: false,
        error: 'invalid request body',
      })
    }
  })

  it('14 null optional keys = absent', () => {
    const r = decodeRequest(
      'pull',
      JSON.stringify({ client_id: 'c', ...pair, tables: null, known_buckets: null, limit: null, checkpoint: null }),
    )
    expect(r.ok).toBe(true)
    if (r.ok) {
      expect(r.value.tables).toBeUndefined()
      expect(r.value.known_buckets).toBeUndefined()
      expect(r.value.limit).toBeUndefined()
    }
    const s = decodeRequest('snapshot', JSON.stringify({ client_id: 'c', ...pair, cursor: null, limit: null }))
    expect(s.ok && s.value.cursor).toBeUndefined()
    const p = decodeRequest(
      'push',
      JSON.stringify({
        ...pair,
        changes: [{ id: 'x', table_name: 't', operation: 'delete', data: null, base_updated_at: null }],
      }),
    )
    expect(p.ok && p.value.changes?.[0]?.base_updated_at).toBeUndefined()
  })

  it('only the first JSON value is read: trailing bytes after it are ignored (Go json.Decoder)', () => {
    const first = JSON.stringify({ client_id: 'c', ...pair })
    for (const tail of [' trailing', '{"x":1}', '\n[1,2]', ' }']) {
      expect(decodeRequest('pull', first + tail)).toEqual({ ok: true, value: { client_id: 'c', ...pair } })
    }
    expect(decodeRequest('pull', `[1] ${first}`)).toEqual({ ok: false, error: 'invalid request body' })
  })

  it('unknown keys are ignored', () => {
    expect(decodeRequest('pull', JSON.stringify({ client_id: 'c', ...pair, extra: { deep: [1] } })).ok).toBe(true)
  })

  it('RFC 3339 timestamps: Z or offset, optional fraction; nothing else', () => {
    for (const ok of [
      '2026-03-05T12:00:00Z',
      '2026-03-05T12:00:00.123456Z',
      '2026-03-05T12:00:00+02:00',
      '2026-03-05T12:00:00.1-05:30',
      '0001-01-01T00:00:00Z',
    ]) {
      expect(isRfc3339(ok), ok).toBe(true)
    }
    for (const bad of [
      'yesterday',
      '2026-03-05',
      '2026-03-05 12:00:00Z',
      '2026-13-05T12:00:00Z',
      '2026-02-30T12:00:00Z',
      '2026-03-05T25:00:00Z',
      '2026-03-05T12:00:00',
    ]) {
      expect(isRfc3339(bad), bad).toBe(false)
    }
  })

  it('property: any JSON value that is not an object is rejected; decode never throws', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const r = decodeRequest('push', JSON.stringify(value) ?? '')
        if (value === null || typeof value !== 'object' || Array.isArray(value))
          expect(r).toEqual({ ok: false, error: 'invalid request body' })
      }),
    )
    fc.assert(
      fc.property(fc.string(), (s) => {
        expect(() => decodeRequest('pull', s)).not.toThrow()
      }),
    )
  })
})

describe('exact numbers in request bodies', () => {
  it('decodes numbers a double cannot hold without rounding them', () => {
    const body =
      '{"client_id":"c","schema_version":1,"schema_hash":"h","changes":[{"id":"1","table_name":"t","operation":"update",' +
      '"data":{"big":9223372036854775807,"n":1234567890123456789012345678901234567890.5,"j":{"x":12345678901234567890}}}]}'
    const r = decodeRequest('push', body)
    if (!r.ok) throw new Error(r.error)
    const data = r.value.changes?.[0]?.data as { [k: string]: unknown }
    expect(data.big).toBe(9223372036854775807n)
    expect(String(data.n)).toBe('1234567890123456789012345678901234567890.5')
    expect(data.j).toEqual({ x: 12345678901234567890n })
  })
})
