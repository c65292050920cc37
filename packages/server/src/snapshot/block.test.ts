import { OP_INSERT, type SnapshotResponse, type SyncRecord } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import type { EngineContext } from '../core/context.js'
import { renderJson, renderJsonBytes, textRecord } from '../pull/record.js'
import type { ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { blockRows } from './block.js'
import { convertRows, recordPlan, StampNotUtc } from './convert.js'
import { rowBytesOf } from './readahead.js'
import { addRecords, type PageRecords, setRecords, snapshotRecordCount } from './records.js'

// Records built from converted rows (`BlockRow.record`) read as any page record, and a response body splices their
// bytes only while they still say what their bytes say.
const t = {
  tableName: 'notes',
  updatedAtColumn: 'updated_at',
  q: { id: '"id"', updatedAt: '"updated_at"' },
} as unknown as ResolvedTable
const contract = {
  columns: new Map([
    [
      'notes',
      [
        { name: 'id', db_type: 'text' },
        { name: 'n', db_type: 'bigint' },
        { name: 'body', db_type: 'text' },
        { name: 'updated_at', db_type: 'timestamp with time zone' },
      ],
    ],
  ]),
} as unknown as SchemaContract
const plan = recordPlan(t, contract, '_s')
if (!plan) throw new Error('no plan')
// COPY text rows: id::text, then the columns id, n, body, updated_at (ISO), then updated_at AT TIME ZONE 'UTC'.
const copy = [
  'a\ta\t12345678901234567890\thi\\tthere\t2026-01-02 03:04:05.5+00\t2026-01-02 03:04:05.5',
  'b\tb\t\\N\t"q"\t2026-01-02 03:04:05+00\t2026-01-02 03:04:05',
  'c\tc\t-1\t\t2026-01-02 03:04:05+01\t2026-01-02 02:04:05',
]
const block = convertRows(new TextEncoder().encode(`${copy.join('\n')}\n`), plan, 64)
const rows = blockRows(block)
const fresh = () => rows.map((r) => r.record('notes'))
const plain = [
  {
    id: 'a',
    table_name: 'notes',
    data: { id: 'a', n: 12345678901234567890n, body: 'hi\tthere', updated_at: '2026-01-02T03:04:05.5+00:00' },
    updated_at: '2026-01-02T03:04:05.5Z',
  },
  {
    id: 'b',
    table_name: 'notes',
    data: { id: 'b', n: null, body: '"q"', updated_at: '2026-01-02T03:04:05+00:00' },
    updated_at: '2026-01-02T03:04:05Z',
  },
  {
    id: 'c',
    table_name: 'notes',
    data: { id: 'c', n: -1, body: '', updated_at: '2026-01-02T03:04:05+01:00' },
    updated_at: '2026-01-02T02:04:05Z',
  },
]
/** The plan of a `notes` table with one JSON column `j` of type `dbType` (and its stamp). */
function jsonColumnPlan(dbType: 'json' | 'jsonb') {
  const columns = [
    { name: 'j', db_type: dbType },
    { name: 'updated_at', db_type: 'timestamp with time zone' },
  ]
  const p = recordPlan(t, { columns: new Map([['notes', columns]]) } as unknown as SchemaContract, '_s')
  if (!p) throw new Error('no plan')
  return p
}
const wireText = (rs: unknown[]) =>
  `{"records":[${rs.map((r) => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? `#${v}#` : v)).replace(/"#(-?\d+)#"/g, '$1')).join(',')}]}`

describe('records of converted rows', () => {
  it('read as plain records: ids, stamps, data (exact numbers), spread, JSON', () => {
    const recs = fresh()
    expect(rows.map((r) => r.id)).toEqual(['a', 'b', 'c'])
    expect(recs).toEqual(plain)
    expect({ ...recs[1] }).toEqual(plain[1])
    expect(JSON.parse(JSON.stringify(recs[2]))).toEqual(plain[2])
  })

  it('a page of them renders as its bytes: the same body as plain records', () => {
    const body = renderJson({ records: fresh() })
    expect(body).toBe(wireText(plain))
    expect(Buffer.from(renderJsonBytes({ records: fresh(), has_more: false })).toString()).toBe(
      `${wireText(plain).slice(0, -1)},"has_more":false}`,
    )
  })

  it('reordered, partial or mixed pages render record by record', () => {
    const [a, b, c] = fresh() as [SyncRecord, SyncRecord, SyncRecord]
    expect(renderJson({ records: [c, a] })).toBe(wireText([plain[2], plain[0]]))
    expect(renderJson({ records: [b, c] })).toBe(wireText([plain[1], plain[2]]))
    const other = { id: 'z', table_name: 'x', data: { v: 1 }, updated_at: '2026-01-01T00:00:00Z' }
    const text = textRecord('y', 'notes', '{"v":2}', '2026-01-01T00:00:00Z')
    expect(renderJson({ records: [a, other, text, b, c] })).toBe(
      wireText([plain[0], other, { ...other, id: 'y', table_name: 'notes', data: { v: 2 } }, plain[1], plain[2]]),
    )
  })

  it('a record changed after it was made renders as what it holds', () => {
    const recs = fresh() as [SyncRecord, SyncRecord, SyncRecord]
    recs[0].id = 'renamed'
    recs[1].updated_at = '2030-01-01T00:00:00Z'
    delete (recs[2] as { data?: unknown }).data
    ;(recs[2] as { data?: unknown }).data = { redacted: true }
    expect(renderJson({ records: recs })).toBe(
      wireText([
        { ...plain[0], id: 'renamed' },
        { ...plain[1], updated_at: '2030-01-01T00:00:00Z' },
        { id: 'c', table_name: 'notes', updated_at: '2026-01-02T02:04:05Z', data: { redacted: true } },
      ]),
    )
  })

  it('a record moved to another table renders with the table it names, not the one its bytes carry', () => {
    const recs = fresh() as [SyncRecord, SyncRecord, SyncRecord]
    recs[1].table_name = 'archived_notes' // e.g. a SyncService wrapper mapping table names
    expect(renderJson({ records: recs })).toBe(
      wireText([plain[0], { ...plain[1], table_name: 'archived_notes' }, plain[2]]),
    )
    expect(Buffer.from(renderJsonBytes({ records: recs })).toString()).toBe(renderJson({ records: recs }))
  })

  it('makes room for column names that escape to many bytes (their keys outgrow the values)', () => {
    // 100 integer columns whose 63-byte names are mostly quotes (`\"` in JSON: 130-byte keys), all NULL.
    const names = Array.from({ length: 100 }, (_, i) => `${'"'.repeat(60)}${String(i).padStart(3, '0')}`)
    const wide = recordPlan(
      t,
      {
        columns: new Map([
          [
            'notes',
            [
              ...names.map((name) => ({ name, db_type: 'integer' })),
              { name: 'updated_at', db_type: 'timestamp with time zone' },
            ],
          ],
        ]),
      } as unknown as SchemaContract,
      '_s',
    )
    if (!wide) throw new Error('no plan')
    const data = Object.fromEntries([...names.map((n) => [n, null]), ['updated_at', '2026-01-02T03:04:05+00:00']])
    for (const count of [1, 2, 3]) {
      const line = ['x', ...names.map(() => '\\N'), '2026-01-02 03:04:05+00', '2026-01-02 03:04:05'].join('\t')
      const wideBlock = convertRows(new TextEncoder().encode(`${line}\n`.repeat(count)), wide, 64)
      const recs = blockRows(wideBlock).map((r) => r.record('notes'))
      const expected = { id: 'x', table_name: 'notes', data, updated_at: '2026-01-02T03:04:05Z' }
      expect(JSON.parse(renderJson({ records: recs }))).toEqual({ records: Array(count).fill(expected) })
    }
  })

  it('read-ahead counts the memory converted rows hold: a buffer of their size', () => {
    // The conversion sizes its buffer for the worst case (escapes), several times what these rows take.
    const retained = block.bytes.buffer.byteLength + block.offsets.byteLength + block.deep.byteLength
    expect(block.bytes.buffer.byteLength).toBe(block.bytes.length)
    expect(rowBytesOf(rows) * block.count).toBeGreaterThanOrEqual(retained)
  })

  it('refuses text that does not have the columns of its plan (a row short of a field)', () => {
    const short = new TextEncoder().encode('d\t1\tx\t2026-01-02 03:04:05+00\t2026-01-02 03:04:05\n')
    expect(() => convertRows(short, plan, 64)).toThrow(/columns of its plan/)
    const unterminated = new TextEncoder().encode(copy[0] as string)
    expect(() => convertRows(unterminated, plan, 64)).toThrow(/final newline/)
    // A backslash escaping the final newline (text, then JSON): refused, not read past the end (an endless loop).
    const dangling = new TextEncoder().encode('d\td\t1\tx\\\n')
    expect(() => convertRows(dangling, plan, 64)).toThrow(/backslash at the end of a row/)
    const jsonPlan = jsonColumnPlan('json')
    expect(() => convertRows(new TextEncoder().encode('d\t[1\\\n'), jsonPlan, 64)).toThrow(/backslash/)
  })

  it('flags a row nested deeper than the limit', () => {
    const enc = new TextEncoder()
    const deep = convertRows(enc.encode('d\td\t1\tx\t2026-01-02 03:04:05+00\t2026-01-02 03:04:05\n'), plan, 1)
    expect(blockRows(deep)[0]?.deep).toBe(false) // the data object alone is depth 1
    const jsonPlan = jsonColumnPlan('jsonb')
    const src = 'd\t{"a": [1, "]]]"]}\t2026-01-02 03:04:05+00\t2026-01-02 03:04:05\n'
    expect(blockRows(convertRows(enc.encode(src), jsonPlan, 3))[0]?.deep).toBe(false)
    expect(blockRows(convertRows(enc.encode(src), jsonPlan, 2))[0]?.deep).toBe(true)
  })

  it('grows its output when rows escape to more than twice their text, and keeps converting afterwards', () => {
    // Control characters COPY writes raw become \u00XX (6 bytes each): 2 000 rows of 100 of them, 200 kB of text,
    // about 1.2 MB of records, past the room a conversion starts with. Then a small block on the same memory.
    const body = '\u0001'.repeat(100)
    const line = `e\te\t7\t${body}\t2026-01-02 03:04:05+00\t2026-01-02 03:04:05\n`
    const big = convertRows(new TextEncoder().encode(line.repeat(2000)), plan, 64)
    expect(big.count).toBe(2000)
    const recs = blockRows(big).map((r) => r.record('notes'))
    const expected = {
      id: 'e',
      table_name: 'notes',
      data: { id: 'e', n: 7, body, updated_at: '2026-01-02T03:04:05+00:00' },
      updated_at: '2026-01-02T03:04:05Z',
    }
    const parsed = JSON.parse(renderJson({ records: recs })) as { records: unknown[] }
    expect(parsed.records).toHaveLength(2000)
    expect(parsed.records[1999]).toEqual(expected)
    const again = convertRows(new TextEncoder().encode(`${copy.join('\n')}\n`), plan, 64)
    expect(Buffer.from(again.bytes).equals(Buffer.from(block.bytes))).toBe(true)
  })
})

describe('a snapshot page of converted rows: records built only when read', () => {
  const ctx = { limits: { maxJsonDepth: 64 } } as unknown as EngineContext
  const y = { id: 'y', table_name: 'notes', data: { v: 2 }, updated_at: '2026-01-01T00:00:00Z' }
  /** A page: a row read as text, then rows a, c of a block whose row b is too deep (two runs), then a again. */
  function page(): { res: SnapshotResponse; page: PageRecords } {
    const p: PageRecords = { segments: [], count: 0, unrenderable: [] }
    addRecords(ctx, t, [{ id: 'y', data: '{"v":2}', updated_at: '"2026-01-01T00:00:00"' }], p)
    addRecords(ctx, t, blockRows({ ...block, deep: Uint8Array.of(0, 1, 0) }), p)
    addRecords(ctx, t, rows.slice(0, 1), p)
    const res: SnapshotResponse = { records: [], checkpoint: 5, has_more: true, schema_version: 1, schema_hash: 'h' }
    setRecords(res, p)
    res.cursor = { checkpoint: 5, table_idx: 0, after_id: 'a' }
    return { res, page: p }
  }
  const envelope = ',"checkpoint":5,"has_more":true,"schema_version":1,"schema_hash":"h"'
  const tail = `${envelope},"cursor":{"checkpoint":5,"table_idx":0,"after_id":"a"}}`
  const text = (records: unknown[], end = tail) => `${wireText(records).slice(0, -1)}${end}`
  const unread = (res: SnapshotResponse) => Object.getOwnPropertyDescriptor(res, 'records')?.get !== undefined

  it('renders byte for byte as its records do once read, without building them', () => {
    const { res, page: p } = page()
    expect(p.segments).toHaveLength(4) // the text record and three runs: [a], [c], [a]
    expect(p.unrenderable).toEqual([{ table: 'notes', id: 'b', operation: OP_INSERT }])
    const lazy = Buffer.from(renderJsonBytes(res)).toString()
    expect(renderJson(res)).toBe(lazy)
    expect(snapshotRecordCount(res)).toBe(4)
    expect(unread(res)).toBe(true)
    expect(lazy).toBe(text([y, plain[0], plain[2], plain[0]]))
    // Read: the records a page built before (wire records), a plain data property in its place among the keys.
    expect(res.records).toEqual([y, plain[0], plain[2], plain[0]])
    expect(unread(res)).toBe(false)
    expect(res.records).toBe(res.records)
    expect(Object.keys(res)).toEqual(['records', 'checkpoint', 'has_more', 'schema_version', 'schema_hash', 'cursor'])
    expect(Buffer.from(renderJsonBytes(res)).toString()).toBe(lazy)
    expect(snapshotRecordCount(res)).toBe(4)
  })

  it('a wrapper that reads, changes, replaces or copies the records renders what it holds', () => {
    const read = page().res
    read.records.pop()
    ;(read.records[1] as SyncRecord).table_name = 'archived'
    expect(renderJson(read)).toBe(text([y, { ...plain[0], table_name: 'archived' }, plain[2]]))
    const assigned = page().res
    assigned.records = [y]
    expect(snapshotRecordCount(assigned)).toBe(1)
    expect(renderJson(assigned)).toBe(text([y]))
    const redefined = page().res
    Object.defineProperty(redefined, 'records', { value: [], enumerable: true })
    expect(renderJson(redefined)).toBe(`{"records":[]${tail}`)
    const copied = page().res
    const copy = { ...copied, cursor: undefined, extra: 1 }
    expect(renderJson(copy)).toBe(text([y, plain[0], plain[2], plain[0]], `${envelope},"extra":1}`))
    expect(renderJson(copied)).toBe(text([y, plain[0], plain[2], plain[0]]))
    const frozen = Object.freeze(page().res)
    expect(frozen.records).toBe(frozen.records)
    expect(renderJson(frozen)).toBe(text([y, plain[0], plain[2], plain[0]]))
  })

  it('takes the wire stamp from the updated-at column when its offset is +00, and refuses another offset', () => {
    // The rows of `plan.selectColumnStamp`: no `updated_at AT TIME ZONE 'UTC'` field after the columns.
    const enc = new TextEncoder()
    const withUtc = copy.slice(0, 2).join('\n')
    const columnStamp = copy.slice(0, 2).map((l) => l.slice(0, l.lastIndexOf('\t')))
    const a = convertRows(enc.encode(`${withUtc}\n`), plan, 64)
    const b = convertRows(enc.encode(`${columnStamp.join('\n')}\n`), plan, 64, true)
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true)
    expect(plan.selectColumnStamp).toBe(plan.select.slice(0, plan.select.lastIndexOf(', ')))
    // BC, infinity and NULL stamps as the UTC column gives them; +01 or +00:30 is another zone's text.
    const stampOf = (text: string) =>
      blockRows(convertRows(enc.encode(`z\tz\t1\tx\t${text}\n`), plan, 64, true))[0]?.wireUpdatedAt
    expect(stampOf('0044-03-15 10:00:00.5+00 BC')).toBe('0044-03-15T10:00:00.5Z')
    expect(stampOf('infinity')).toBe('0001-01-01T00:00:00Z')
    expect(stampOf('\\N')).toBe('0001-01-01T00:00:00Z')
    expect(() => stampOf('2026-01-02 04:04:05+01')).toThrow(StampNotUtc)
    expect(() => stampOf('2026-01-02 03:34:05+00:30')).toThrow(StampNotUtc)
  })
})
