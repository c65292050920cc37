import type { PushRecord } from '@synchro/protocol'
import { describe, expect, it } from 'vitest'
import { lastWriteWins, serverWins } from '../conflict/lww.js'
import type { ConflictResolver } from '../conflict/types.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { decide, needsRow, type Outcome, type Resolve } from './decide.js'
import type { FullRow, OwnRow, RowState } from './rows.js'
import { type Item, isItem, tableInfo, validateRecord } from './validate.js'

// Pure: no database. A table shaped like the test schema's `orders`.
const ORDERS = {
  tableName: 'orders',
  pushPolicy: 'owner_only',
  ownerColumn: 'user_id',
  syncColumns: undefined,
  idColumn: 'id',
  protectedSet: new Set(['id', 'user_id', 'created_at', 'updated_at', 'deleted_at']),
  insertAllowedProtected: new Set(['id', 'user_id']),
} as unknown as ResolvedTable
const READ_ONLY = { ...ORDERS, tableName: 'categories', pushPolicy: 'disabled' } as unknown as ResolvedTable
const col = (name: string, db_type = 'text') => ({ name, db_type })
const contract = {
  columns: new Map([
    [
      'orders',
      [
        col('id', 'uuid'),
        col('user_id'),
        col('status'),
        col('total'),
        col('created_at'),
        col('updated_at'),
        col('deleted_at'),
      ],
    ],
  ]),
} as unknown as SchemaContract
const registry = { get: (n: string) => ({ orders: ORDERS, categories: READ_ONLY })[n] } as unknown as Registry

const ID = '3f1c2a9e-0000-4000-8000-000000000001'
const USER = 'u1'
const SERVER_AT = '2026-01-01T12:00:00.000000Z'
const LATER = '2026-01-01T12:00:05Z'
const EARLIER = '2026-01-01T11:59:55Z'

function item(op: string, over: Partial<PushRecord> = {}): Item {
  const rec: PushRecord = {
    id: ID,
    table_name: 'orders',
    operation: op,
    data: { status: 'paid' },
    ...over,
  } as PushRecord
  const v = validateRecord(registry, contract, 64, 0, rec)
  if (!isItem(v)) throw new Error(`invalid test record: ${v.reasonCode}`)
  return v
}

const stamps = (deletedAt: string | null = null): OwnRow => ({
  writable: true,
  readable: true,
  id: ID,
  updatedAt: SERVER_AT,
  deletedAt,
  data: undefined,
})
const full = (deletedAt: string | null = null): FullRow => ({
  ...stamps(deletedAt),
  data: { id: ID, user_id: USER, status: 'open' },
})
const foreign = (readable: boolean): RowState => ({ writable: false, readable })

function via(resolver: ConflictResolver): Resolve {
  return async (input) => resolver.resolve(input)
}
const lww = via(lastWriteWins())
const failing: Resolve = async () => undefined

async function outcome(it: Item, row: RowState | undefined, resolve: Resolve = lww): Promise<Outcome> {
  return decide(it, row, USER, resolve)
}

describe('validateRecord (table → pushability → operation → data → id)', () => {
  const check = (rec: Partial<PushRecord>, depth = 64) =>
    validateRecord(registry, contract, depth, 3, {
      id: ID,
      table_name: 'orders',
      operation: 'create',
      ...rec,
    } as PushRecord)

  it('rejects each check with its own reason, in order', () => {
    expect(check({ table_name: 'nope', operation: 'bogus' })).toMatchObject({ reasonCode: 'table_not_registered' })
    expect(check({ table_name: 'categories', operation: 'bogus' })).toMatchObject({ reasonCode: 'table_read_only' })
    expect(check({ operation: 'Create' })).toMatchObject({
      reasonCode: 'invalid_operation',
      message: 'unknown operation: Create',
    })
    expect(check({ data: [1, 2] as never })).toMatchObject({
      reasonCode: 'invalid_data',
      message: 'invalid data format',
    })
    expect(check({ operation: 'update', data: null as never })).toMatchObject({ reasonCode: 'invalid_data' })
    expect(check({ data: { a: { b: { c: 1 } } } }, 2)).toMatchObject({ message: 'data nested too deeply' })
    expect(check({ data: {}, id: 'not-a-uuid' })).toMatchObject({
      reasonCode: 'invalid_data',
      message: 'invalid record id',
    })
  })

  it('a delete needs no data; ids are canonicalised to PostgreSQL’s rendering', () => {
    const v = check({ operation: 'delete', id: `{${ID.toUpperCase()}}` })
    expect(isItem(v) && v.key).toBe(ID)
    expect(isItem(v) && v.index).toBe(3)
  })

  it('table facts: create may set id and owner, update neither; other protected columns never', () => {
    const info = tableInfo(contract, ORDERS)
    expect([...info.createCols].sort()).toEqual(['id', 'status', 'total', 'user_id'])
    expect([...info.updateCols].sort()).toEqual(['status', 'total'])
    expect(info.idKind).toBe('uuid')
  })
})

describe('decide: create', () => {
  it('a new id → insert as the caller; data.id / data.user_id / protected columns ignored', async () => {
    const it0 = item('create', { data: { id: 'x', user_id: 'someone', status: 'new', created_at: 'y' } })
    expect(await outcome(it0, undefined)).toEqual({
      kind: 'write',
      write: 'create',
      entries: [
        ['status', 'new'],
        ['id', ID],
        ['user_id', USER],
      ],
      guard: null,
    })
  })

  it('another user’s row (readable or not) → forbidden, nothing about it returned', async () => {
    for (const r of [true, false]) {
      const o = await outcome(item('create'), foreign(r))
      expect(o).toEqual({ kind: 'fail', failure: expect.objectContaining({ reasonCode: 'forbidden' }) })
    }
  })

  it('a live row → record_exists with the row (no deleted_at); read without data → reload first', async () => {
    expect(await outcome(item('create'), stamps())).toEqual({ kind: 'reload' })
    const o = await outcome(item('create'), full())
    expect(o).toMatchObject({
      kind: 'fail',
      failure: { status: 'conflict', reasonCode: 'record_exists', message: 'record already exists' },
      serverVersion: { id: ID, table_name: 'orders', data: full().data, updated_at: '2026-01-01T12:00:00Z' },
    })
    expect(o.kind === 'fail' && o.serverVersion && 'deleted_at' in o.serverVersion).toBe(false)
  })

  it('a deleted row: client newer → resurrection (guarded by the stamp when unlocked, not when locked)', async () => {
    const newer = item('create', { client_updated_at: LATER })
    expect(await outcome(newer, stamps(SERVER_AT))).toMatchObject({
      kind: 'write',
      write: 'resurrect',
      guard: SERVER_AT,
    })
    const locked = await outcome(newer, full(SERVER_AT))
    expect(locked).toMatchObject({ kind: 'write', write: 'resurrect', guard: null })
    // Resurrection writes only update columns: never the owner.
    expect(locked.kind === 'write' && locked.entries).toEqual([
      ['status', 'paid'],
      ['id', ID],
    ])
  })

  it('a deleted row: server newer → server_won_conflict (not record_exists), server_version without deleted_at', async () => {
    const older = item('create', { client_updated_at: EARLIER })
    expect(await outcome(older, stamps(SERVER_AT))).toEqual({ kind: 'reload' })
    const o = await outcome(older, full(SERVER_AT))
    expect(o).toMatchObject({
      kind: 'fail',
      failure: { status: 'conflict', reasonCode: 'server_won_conflict', message: 'server version is newer' },
    })
    expect(o.kind === 'fail' && o.serverVersion && 'deleted_at' in o.serverVersion).toBe(false)
  })

  it('a failing resolver → internal_error (retryable)', async () => {
    const o = await outcome(item('create', { client_updated_at: LATER }), full(SERVER_AT), failing)
    expect(o).toMatchObject({ kind: 'fail', failure: { status: 'rejected_retryable', reasonCode: 'internal_error' } })
  })
})

describe('decide: update', () => {
  it('no row → record_not_found; another user’s or a global row → forbidden', async () => {
    expect(await outcome(item('update'), undefined)).toMatchObject({
      failure: { status: 'rejected_terminal', reasonCode: 'record_not_found', message: 'record not found' },
    })
    expect(await outcome(item('update'), foreign(true))).toMatchObject({ failure: { reasonCode: 'forbidden' } })
    expect(await outcome(item('update'), foreign(false))).toMatchObject({ failure: { reasonCode: 'forbidden' } })
  })

  it('a deleted row → record_deleted with deleted_at in server_version; unlocked → reload first', async () => {
    expect(await outcome(item('update', { client_updated_at: LATER }), stamps(SERVER_AT))).toEqual({ kind: 'reload' })
    const o = await outcome(item('update', { client_updated_at: LATER }), full(SERVER_AT))
    expect(o).toMatchObject({
      failure: { status: 'conflict', reasonCode: 'record_deleted', message: 'record is deleted' },
      serverVersion: { deleted_at: '2026-01-01T12:00:00Z' },
    })
  })

  it('LWW without base: client newer → update (guarded when unlocked); tie or older → server_won_conflict', async () => {
    expect(await outcome(item('update', { client_updated_at: LATER }), stamps())).toEqual({
      kind: 'write',
      write: 'update',
      entries: [
        ['status', 'paid'],
        ['id', ID],
      ],
      guard: SERVER_AT,
    })
    expect(await outcome(item('update', { client_updated_at: LATER }), full())).toMatchObject({ guard: null })
    for (const at of [SERVER_AT, EARLIER]) {
      const o = await outcome(item('update', { client_updated_at: at }), full())
      expect(o).toMatchObject({ failure: { reasonCode: 'server_won_conflict', message: 'server version is newer' } })
      expect(o.kind === 'fail' && o.serverVersion?.data).toEqual(full().data)
    }
  })

  it('server wins on a row read without data → reload (the answer carries the row)', async () => {
    expect(await outcome(item('update', { client_updated_at: EARLIER }), stamps())).toEqual({ kind: 'reload' })
  })

  it('client_updated_at absent → zero time → the server wins', async () => {
    expect(await outcome(item('update'), full())).toMatchObject({ failure: { reasonCode: 'server_won_conflict' } })
  })

  it('base == server (µs exact, any spelling) → client wins whatever its time', async () => {
    const o = await outcome(
      item('update', { client_updated_at: EARLIER, base_updated_at: '2026-01-01T13:00:00+01:00' }),
      full(),
    )
    expect(o).toMatchObject({ kind: 'write', write: 'update' })
  })

  it('base > server → server_won_conflict "client base version is ahead of server version"', async () => {
    const o = await outcome(item('update', { client_updated_at: LATER, base_updated_at: LATER }), full())
    expect(o).toMatchObject({ failure: { message: 'client base version is ahead of server version' } })
  })

  it('base < server → the rule without base decides', async () => {
    const win = await outcome(item('update', { client_updated_at: LATER, base_updated_at: EARLIER }), full())
    expect(win).toMatchObject({ kind: 'write' })
    const lose = await outcome(item('update', { client_updated_at: EARLIER, base_updated_at: EARLIER }), full())
    expect(lose).toMatchObject({ failure: { message: 'server version is newer' } })
  })

  it('tolerance: a client 500 ms behind wins with 1 s of tolerance, 5 s behind loses', async () => {
    const tolerant = via(lastWriteWins({ clockSkewToleranceMs: 1000 }))
    const behind = (at: string) => outcome(item('update', { client_updated_at: at }), full(), tolerant)
    expect(await behind('2026-01-01T11:59:59.5Z')).toMatchObject({ kind: 'write' })
    expect(await behind(EARLIER)).toMatchObject({ failure: { reasonCode: 'server_won_conflict' } })
  })

  it('nothing writable (only protected keys) → applied without a write (Decision 29)', async () => {
    const o = await outcome(
      item('update', { client_updated_at: LATER, data: { user_id: 'x', created_at: 'y' } }),
      full(),
    )
    expect(o).toEqual({ kind: 'applied' })
  })

  it('ServerWins: an update conflicts "server always wins"; a new create and a delete still apply', async () => {
    const sw = via(serverWins())
    expect(await outcome(item('update', { client_updated_at: LATER }), full(), sw)).toMatchObject({
      failure: { reasonCode: 'server_won_conflict', message: 'server always wins' },
    })
    expect(await outcome(item('create', { client_updated_at: LATER }), full(SERVER_AT), sw)).toMatchObject({
      failure: { reasonCode: 'server_won_conflict' },
    })
    expect(await outcome(item('create'), undefined, sw)).toMatchObject({ kind: 'write', write: 'create' })
    expect(await outcome(item('delete'), stamps(), sw)).toMatchObject({ kind: 'write', write: 'delete' })
  })

  it('a failing resolver → internal_error', async () => {
    const o = await outcome(item('update', { client_updated_at: LATER }), full(), failing)
    expect(o).toMatchObject({ failure: { reasonCode: 'internal_error', status: 'rejected_retryable' } })
  })
})

describe('decide: delete', () => {
  it('no row → "record not found or not accessible"; foreign → forbidden', async () => {
    expect(await outcome(item('delete'), undefined)).toMatchObject({
      failure: { reasonCode: 'record_not_found', message: 'record not found or not accessible' },
    })
    expect(await outcome(item('delete'), foreign(true))).toMatchObject({ failure: { reasonCode: 'forbidden' } })
  })

  it('already deleted → applied already_deleted; live → delete, unguarded, whatever the times', async () => {
    expect(await outcome(item('delete'), stamps(SERVER_AT))).toEqual({
      kind: 'applied',
      reasonCode: 'already_deleted',
      message: 'record already deleted',
    })
    const o = await outcome(item('delete', { client_updated_at: EARLIER, base_updated_at: LATER }), stamps(), failing)
    expect(o).toEqual({ kind: 'write', write: 'delete', entries: [['id', ID]], guard: null })
  })
})

describe('needsRow (optimistic pre-load)', () => {
  const lwwR = lastWriteWins()
  it('true exactly when the outcome carries the stored row', async () => {
    expect(await needsRow(item('create'), stamps(), USER, lwwR)).toBe(true)
    expect(await needsRow(item('update'), stamps(SERVER_AT), USER, lwwR)).toBe(true)
    expect(await needsRow(item('update', { client_updated_at: EARLIER }), stamps(), USER, lwwR)).toBe(true)
    expect(await needsRow(item('update', { client_updated_at: LATER }), stamps(), USER, lwwR)).toBe(false)
    expect(await needsRow(item('create', { client_updated_at: LATER }), stamps(SERVER_AT), USER, lwwR)).toBe(false)
    expect(await needsRow(item('delete'), stamps(), USER, lwwR)).toBe(false)
    expect(await needsRow(item('create'), full(), USER, lwwR)).toBe(false)
    const throwing: ConflictResolver = {
      name: 'x',
      resolve: () => {
        throw new Error('boom')
      },
    }
    expect(await needsRow(item('update'), stamps(), USER, throwing)).toBe(false)
  })
})
