import { createTestDatabase, type TestDatabase } from '@synchro/test-harness'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { copyFrom } from './copy.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase()
  await db.pool.query('CREATE TABLE copy_t (a text NOT NULL, n int NOT NULL)')
})
afterAll(async () => {
  await db.drop()
})

it('sends the data with the statement; a COPY failing before or during copy mode leaves the connection usable', async () => {
  const client = await db.pool.connect()
  try {
    const data = Buffer.from('x\t1\ny\t2\n'.repeat(100_000))
    expect(await copyFrom(client, 'COPY copy_t (a, n) FROM STDIN', data)).toBe(200_000)
    // Fails before copy mode: the server drops the data that already followed the statement.
    await expect(copyFrom(client, 'COPY no_such_table FROM STDIN', data)).rejects.toMatchObject({ code: '42P01' })
    // Fails in copy mode (bad value in the middle of the data).
    const bad = Buffer.from(`${'x\t1\n'.repeat(50_000)}x\tnot a number\n${'x\t1\n'.repeat(50_000)}`)
    await expect(copyFrom(client, 'COPY copy_t (a, n) FROM STDIN', bad)).rejects.toMatchObject({ code: '22P02' })
    // Inside a transaction, the failure aborts it as any statement would.
    await client.query('BEGIN')
    await expect(copyFrom(client, 'COPY no_such_table FROM STDIN', data)).rejects.toMatchObject({ code: '42P01' })
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' })
    await client.query('ROLLBACK')
    const { rows } = await client.query('SELECT count(*)::int AS n FROM copy_t')
    expect(rows[0].n).toBe(200_000)
  } finally {
    client.release()
  }
})
