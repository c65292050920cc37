import { describe, expect, it } from 'vitest'
import { Registry, RegistryError } from './registry.js'

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    if (e instanceof RegistryError) return e.code
    throw e
  }
  return undefined
}

describe('registry defaults (§2.5)', () => {
  it('owner column implies owner_only, bucket column = owner, prefix user:', () => {
    const r = new Registry().register({ tableName: 'orders', ownerColumn: 'user_id' })
    const [t] = r.validate()
    expect(t?.pushPolicy).toBe('owner_only')
    expect(t?.bucketByColumn).toBe('user_id')
    expect(t?.bucketPrefix).toBe('user:')
    expect(t?.globalWhenBucketNull).toBe(false)
    expect(t?.idColumn).toBe('id')
    expect(t?.updatedAtColumn).toBe('updated_at')
    expect(t?.deletedAtColumn).toBe('deleted_at')
  })
  it('allowGlobalRead with an owner column turns on globalWhenBucketNull', () => {
    const [t] = new Registry()
      .register({ tableName: 'categories', ownerColumn: 'user_id', allowGlobalRead: true })
      .validate()
    expect(t?.globalWhenBucketNull).toBe(true)
  })
  it('a table with neither owner nor parent is push-disabled', () => {
    const [t] = new Registry().register({ tableName: 'products' }).validate()
    expect(t?.pushPolicy).toBe('disabled')
    expect(t?.bucketByColumn).toBeUndefined()
  })
  it('protected set holds timestamps, id, owner and parent FK; insert allows id, owner, FK', () => {
    const r = new Registry().register({ tableName: 'orders', ownerColumn: 'user_id' }).register({
      tableName: 'order_details',
      parentTable: 'orders',
      parentFkColumn: 'order_id',
      protectedColumns: ['secret'],
    })
    const t = r.get('order_details')
    expect([...(t?.protectedSet ?? [])].sort()).toEqual([
      'created_at',
      'deleted_at',
      'id',
      'order_id',
      'secret',
      'updated_at',
    ])
    expect([...(t?.insertAllowedProtected ?? [])].sort()).toEqual(['id', 'order_id'])
  })
})

describe('registry validation (§3 K)', () => {
  it('134 invalid push policy', () => {
    expect(errorCode(() => new Registry().register({ tableName: 't', pushPolicy: 'everyone' as any }).validate())).toBe(
      'invalid_push_policy',
    )
  })
  it('135 globalWhenBucketNull without allowGlobalRead', () => {
    expect(
      errorCode(() =>
        new Registry().register({ tableName: 't', ownerColumn: 'u', globalWhenBucketNull: true }).validate(),
      ),
    ).toBe('invalid_bucket_config')
  })
  it('136 redundant protected columns', () => {
    for (const col of ['created_at', 'updated_at', 'deleted_at', 'id', 'user_id']) {
      expect(
        errorCode(() =>
          new Registry().register({ tableName: 't', ownerColumn: 'user_id', protectedColumns: [col] }).validate(),
        ),
      ).toBe('redundant_protected_column')
    }
    expect(
      errorCode(() =>
        new Registry()
          .register({ tableName: 't', ownerColumn: 'user_id', idColumn: 'pk', protectedColumns: ['pk'] })
          .validate(),
      ),
    ).toBe('redundant_protected_column')
  })
  it('137 unregistered parent / missing FK column', () => {
    expect(
      errorCode(() => new Registry().register({ tableName: 'c', parentTable: 'p', parentFkColumn: 'p_id' }).validate()),
    ).toBe('unregistered_parent')
    expect(
      errorCode(() =>
        new Registry()
          .register({ tableName: 'p', ownerColumn: 'u' })
          .register({ tableName: 'c', parentTable: 'p' })
          .validate(),
      ),
    ).toBe('missing_parent_fk')
  })
  it('138 parent cycle', () => {
    expect(
      errorCode(() =>
        new Registry()
          .register({ tableName: 'a', parentTable: 'b', parentFkColumn: 'b_id' })
          .register({ tableName: 'b', parentTable: 'a', parentFkColumn: 'a_id' })
          .validate(),
      ),
    ).toBe('parent_cycle')
  })
  it('139 orphaned chain, even when the child has an owner column', () => {
    expect(
      errorCode(() =>
        new Registry()
          .register({ tableName: 'root' })
          .register({ tableName: 'child', ownerColumn: 'u', parentTable: 'root', parentFkColumn: 'root_id' })
          .validate(),
      ),
    ).toBe('orphaned_chain')
  })
  it('140 push-enabled table without ownership path', () => {
    expect(errorCode(() => new Registry().register({ tableName: 't', pushPolicy: 'owner_only' }).validate())).toBe(
      'missing_ownership_path',
    )
  })
  it('Decision 17: registering a table twice is an error', () => {
    expect(errorCode(() => new Registry().register({ tableName: 't' }).register({ tableName: 't' }).validate())).toBe(
      'duplicate_table',
    )
  })
  it('first error wins in registration order', () => {
    expect(
      errorCode(() =>
        new Registry()
          .register({ tableName: 'a', pushPolicy: 'owner_only' })
          .register({ tableName: 'b', ownerColumn: 'u', globalWhenBucketNull: true })
          .validate(),
      ),
    ).toBe('missing_ownership_path')
  })
})
