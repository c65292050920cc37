import { randomUUID } from 'node:crypto'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openRequest } from './open.js'

let app: TestApp
beforeAll(async () => {
  app = await createTestApp()
})
afterAll(async () => {
  await app.close()
})

/** Identifiers the opening statement must carry as data, never as SQL (it inlines them as quoted literals). */
const AWKWARD = ["o'brien", 'back\\slash', "'); DROP TABLE orders; --", '$1 $2 $10', "E'\\\\'", 'ünï\u2028cødé 🙂', ' ']
/** User ids travel in a header: Latin-1 only, and surrounding blanks are trimmed. */
const AWKWARD_USERS = AWKWARD.filter((v) => v.trim() === v && [...v].every((ch) => ch.charCodeAt(0) < 256))

describe('the request opener carries awkward identifiers as data', () => {
  it('register, push, snapshot and pull work for user and client ids that need quoting', async () => {
    for (const [i, clientId] of AWKWARD.entries()) {
      const user = `${AWKWARD_USERS[i % AWKWARD_USERS.length]}-${randomUUID()}`
      const reg = await app.call('POST', '/sync/register', {
        user,
        body: { client_id: clientId, platform: "p'f", app_version: '1.0.0', schema_version: 0, schema_hash: '' },
      })
      expect(reg.status, clientId).toBe(200)
      const pair = { client_id: clientId, schema_version: reg.body.schema_version, schema_hash: reg.body.schema_hash }
      const push = await app.call('POST', '/sync/push', { user, body: { ...pair, changes: [] } })
      expect(push.status, clientId).toBe(200)
      const snap = await app.call('POST', '/sync/snapshot', { user, body: pair })
      expect(snap.status, clientId).toBe(200)
      const pull = await app.call('POST', '/sync/pull', { user, body: { ...pair, checkpoint: snap.body.checkpoint } })
      expect(pull.status, clientId).toBe(200)
      expect(pull.body.snapshot_required).toBeUndefined()
      // The stored row is exactly this (user, client) pair, touched by push, advanced by snapshot and pull.
      const { rows } = await app.db.pool.query(
        `SELECT client_id, platform, bucket_subs, last_push_at IS NOT NULL AS pushed, last_pull_seq IS NOT NULL AS pulled
           FROM sync_clients WHERE user_id = $1`,
        [user.toLowerCase()],
      )
      expect(rows, clientId).toEqual([
        {
          client_id: clientId,
          platform: "p'f",
          bucket_subs: [`user:${user.toLowerCase()}`, 'global'],
          pushed: true,
          pulled: true,
        },
      ])
      // A client id that differs only by what quoting would eat is another, unregistered client.
      const other = await app.call('POST', '/sync/pull', { user, body: { ...pair, client_id: `${clientId}'` } })
      expect(other.status).toBe(404)
    }
    expect((await app.db.pool.query(`SELECT to_regclass('orders') IS NOT NULL AS ok`)).rows[0].ok).toBe(true)
  })

  it('a schema mismatch or a refusal rolls back what the opening statement wrote', async () => {
    const user = randomUUID()
    const { clientId, version, hash } = await app.registerClient(user)
    await app.db.pool.query(`UPDATE sync_clients SET last_push_at = NULL WHERE user_id = $1`, [user])
    const stale = await app.call('POST', '/sync/push', {
      user,
      body: { client_id: clientId, schema_version: version, schema_hash: `${hash}x`, changes: [] },
    })
    expect(stale.status).toBe(409)
    const { rows } = await app.db.pool.query(`SELECT last_push_at FROM sync_clients WHERE user_id = $1`, [user])
    expect(rows).toEqual([{ last_push_at: null }])
    // Register with a stale pair must not create the client either.
    const reg = await app.call('POST', '/sync/register', {
      user,
      body: { client_id: 'new', platform: 'p', app_version: '1.0.0', schema_version: version, schema_hash: 'nope' },
    })
    expect(reg.status).toBe(409)
    const n = await app.db.pool.query(`SELECT count(*)::int AS n FROM sync_clients WHERE user_id = $1`, [user])
    expect(n.rows[0].n).toBe(1)
  })
})

describe('queryThenCommit as a prepared statement', () => {
  it('a connection runs the statement as is once, then prepares it; a failed execution leaves it prepared', async () => {
    const pool = new pg.Pool({ connectionString: app.db.url, max: 1 })
    const one = await createTestApp({ db: app.db, engine: { pool, migrate: false } })
    try {
      const user = randomUUID()
      const { clientId, version, hash } = await one.registerClient(user)
      const req = { client_id: clientId, schema_version: version, schema_hash: hash }
      const run = async (text: string, value: number, prepare: string) => {
        const tx = await openRequest(one.engine.ctx, user, req, { access: 'read' })
        return tx.queryThenCommit<{ n: number }>({ text, values: [value], prepare })
      }
      const prepared = async () =>
        (await pool.query(`SELECT name FROM pg_prepared_statements ORDER BY name`)).rows.map((r) => r.name)
      const divide = 'SELECT (12 / $1::int)::int AS n'
      expect(await run(divide, 3, 'synchro_test_divide')).toEqual([{ n: 4 }])
      expect(await prepared()).toEqual(['synchro_test_divide'])
      await expect(run(divide, 0, 'synchro_test_divide')).rejects.toThrow(/division by zero/)
      expect(await run(divide, 4, 'synchro_test_divide')).toEqual([{ n: 3 }])
      // A statement that fails is not prepared; once it runs, it is.
      const probe = 'SELECT count(*)::int AS n FROM synchro_prepare_probe WHERE $1::int > 0'
      await expect(run(probe, 1, 'synchro_test_probe')).rejects.toThrow(/does not exist/)
      expect(await prepared()).toEqual(['synchro_test_divide'])
      await one.db.pool.query('CREATE TABLE synchro_prepare_probe (x int)')
      expect(await run(probe, 1, 'synchro_test_probe')).toEqual([{ n: 0 }])
      expect(await run(probe, 2, 'synchro_test_probe')).toEqual([{ n: 0 }])
      expect(await prepared()).toEqual(['synchro_test_divide', 'synchro_test_probe'])
    } finally {
      await one.db.pool.query('DROP TABLE IF EXISTS synchro_prepare_probe')
      await one.close()
      await pool.end().catch(() => {})
    }
  })
})
