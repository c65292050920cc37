import { type SyncRecord, stringifyJsonLossless } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import { renderJson, renderJsonBytes, textRecord } from './record.js'

// Review (session 7): page records must behave as plain SyncRecord objects for whatever sits between the engine and
// the response (a SyncService wrapper passed to createSyncHandler): what the object holds is what the body says.
const TEXT = '{"x":1,"secret":"s3cr3t"}' // no spaces: the same text as stringifyJsonLossless of its parse
const record = () => textRecord('a', 'orders', TEXT, '2026-01-01T00:00:00Z')
const body = (r: SyncRecord) => Buffer.from(renderJsonBytes({ records: [r], checkpoint: 1 })).toString('utf8')
const plain = (r: SyncRecord) => stringifyJsonLossless({ records: [r], checkpoint: 1 })

describe('page records behave as plain objects (review)', () => {
  it('data replaced (delete, then assign: the only way past a getter-only property) is what the body renders', () => {
    const r = record()
    delete (r as { data?: unknown }).data
    r.data = { x: 1 }
    expect(body(r)).toBe(plain(r))
    expect(renderJson({ records: [r] })).not.toContain('s3cr3t')
  })

  it('data redefined with defineProperty is what the body renders', () => {
    const r = record()
    Object.defineProperty(r, 'data', { value: { x: 2 }, enumerable: true, configurable: true, writable: true })
    expect(body(r)).toBe(plain(r))
  })

  it('data deleted: the body has no data, as JSON.stringify of the object', () => {
    const r = record()
    delete (r as { data?: unknown }).data
    expect(body(r)).toBe(plain(r))
  })

  // A getter called on an object that carries no stamp (a descriptor clone; a Proxy, as private fields do not pass
  // through proxies) cannot reach the text. Reaching it would need the text reachable from the getter (a closure or
  // a WeakMap per record), the cost the Stamped records removed; what it must never do is answer undefined, which a
  // wrapper would pass on as a record without data. A spread copy (what wrappers usually make) has its data.
  it('a clone made from its property descriptors throws a clear error when its data is read, never undefined', () => {
    const r = record()
    const clone = Object.create(Object.prototype, Object.getOwnPropertyDescriptors(r)) as SyncRecord
    expect(() => clone.data).toThrow(/Proxy or a copy of its property descriptors/)
    expect(() => JSON.stringify(clone)).toThrow(TypeError)
  })

  it('a Proxy of a record throws a clear error when its data is read; a spread copy of it has its data', () => {
    const r = record()
    expect(() => new Proxy(r, {}).data).toThrow(/Proxy or a copy of its property descriptors/)
    expect({ ...r }.data).toEqual({ x: 1, secret: 's3cr3t' })
    const inherited = Object.create(r) as SyncRecord // a record as prototype reaches its data through the chain
    expect(inherited.data).toEqual({ x: 1, secret: 's3cr3t' })
  })

  it('id / updated_at / deleted_at mutated before rendering are what the body renders', () => {
    const r = record()
    r.id = 'b"é'
    r.updated_at = '2027-01-01T00:00:00Z'
    r.deleted_at = '2027-01-02T00:00:00Z'
    expect(body(r)).toBe(plain(r))
  })
})
