import { rootUrl } from '@synchro/test-harness/pg'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WalApplyError } from '../wal/errors.js'
import { safeErrorFacts, safeErrorMessage, WITHHELD } from './log.js'

// Real PostgreSQL errors: their messages (and details) quote row values; the facts we log must not.
const MARKER = 'SSN-123-45-6789'
let client: pg.Client

beforeAll(async () => {
  client = new pg.Client({ connectionString: rootUrl() })
  await client.connect()
})
afterAll(() => client.end())

async function failure(sql: string, params: unknown[] = []): Promise<Error> {
  return client.query(sql, params).then(
    () => {
      throw new Error(`expected ${sql} to fail`)
    },
    (err: Error) => err,
  )
}

describe('safeErrorFacts', () => {
  it('withholds PostgreSQL messages that may quote row values, also inside wrapping errors', async () => {
    const errors = [
      await failure('SELECT $1::bigint', [MARKER]), // 22P02 invalid input syntax for type bigint: "SSN-…"
      await failure('SELECT $1::date', [MARKER]),
      await failure(`DO $$ BEGIN RAISE EXCEPTION 'bad secret %', '${MARKER}'; END $$`), // P0001
      await failure(
        `CREATE TEMP TABLE t (v text CHECK (v = 'x')); INSERT INTO t VALUES ('${MARKER}')`, // 23514, detail has the row
      ),
    ]
    for (const err of errors) {
      expect(err.message + JSON.stringify(err)).toContain(MARKER) // the raw error does quote it
      const wrapped = new WalApplyError(`writing a WAL batch failed: ${err.message}`, { cause: err })
      for (const e of [err, wrapped]) {
        const facts = JSON.stringify(safeErrorFacts(e))
        expect(facts).not.toContain(MARKER)
        expect(facts).toContain(WITHHELD)
        expect(safeErrorFacts(e).sqlstate ?? safeErrorFacts(e).code).toMatch(/^(22|23|P0)/)
        expect(safeErrorMessage(e)).not.toContain(MARKER)
      }
      expect(safeErrorMessage(wrapped)).toMatch(/^writing a WAL batch failed: /)
    }
  })

  it('keeps messages that are about the server or the schema', async () => {
    const err = await failure('SELECT * FROM no_such_table_here')
    expect(safeErrorFacts(err)).toMatchObject({
      code: '42P01',
      message: 'relation "no_such_table_here" does not exist',
    })
    const plain = new Error('connect ECONNREFUSED 127.0.0.1:1')
    expect(safeErrorMessage(plain)).toBe(plain.message)
  })
})
