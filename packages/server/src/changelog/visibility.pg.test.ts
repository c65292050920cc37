import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { countInvisible, waitUntilVisible } from './compute.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase('visibility')
})
afterAll(async () => {
  await db?.drop()
})

describe('decoded transactions become visible before they are computed', () => {
  it('a transaction at or above the snapshot xmax counts as invisible, not only one in the in-progress list', async () => {
    // The newest transaction, still running, is at or above the other backends' snapshot xmax (nothing after it has
    // completed) and so absent from their in-progress list: a decoded commit is in exactly that state until its
    // backend leaves the proc array.
    const writer = await db.pool.connect()
    const reader = await db.pool.connect()
    try {
      await writer.query('BEGIN')
      const xid = Number((await writer.query('SELECT txid_current() % 4294967296 AS x')).rows[0].x)
      expect(await countInvisible(reader, [xid])).toBe(1)
      const order: string[] = []
      const waiting = waitUntilVisible(reader, [{ xid, changes: [] } as never]).then(() => order.push('visible'))
      order.push('commit')
      await writer.query('COMMIT')
      await waiting
      expect(order).toEqual(['commit', 'visible'])
      expect(await countInvisible(reader, [xid])).toBe(0)
    } finally {
      writer.release()
      reader.release()
    }
  })

  it('committed transactions are visible, also xids that widen into the previous or next epoch', async () => {
    const c = await db.pool.connect()
    const xid = Number((await c.query('SELECT txid_current() % 4294967296 AS x')).rows[0].x)
    // 3: the first normal xid (far below xmax: visible). 2^32 - 10: nearest the xmax in the previous epoch — in
    // epoch 0 there is none, so it is ignored rather than waited for.
    try {
      expect(await countInvisible(c, [xid, 3, 4294967286])).toBe(0)
    } finally {
      c.release()
    }
  })
})
