import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rfc3339FromJson, sqlRfc3339, sqlRfc3339Json, trimRfc3339 } from './time.js'

let app: TestApp
beforeAll(async () => {
  app = await createTestApp({})
})
afterAll(async () => {
  await app?.close()
})

const EDGES = [
  '2026-01-02 03:04:05.678901+02',
  '2026-01-02 03:04:05.1+00',
  '2026-01-02 03:04:05.000100+00',
  '2026-01-02 03:04:05+05:30',
  '1883-11-18 12:00:00+00',
  '0001-01-01 00:00:00+00',
  '0045-03-15 12:00:00.5+00 BC',
  '4713-11-24 00:00:00+00 BC',
  '10000-01-01 00:00:00+00',
  '294276-12-31 23:59:59.999999+00',
  'infinity',
  '-infinity',
]

describe('sqlRfc3339Json', () => {
  it('renders, through rfc3339FromJson, what trimRfc3339 makes of sqlRfc3339 — eras, infinities, NULL, any DateStyle and TimeZone', async () => {
    const db = await app.db.pool.connect()
    try {
      for (const settings of ["DateStyle = 'ISO'", "DateStyle = 'SQL, DMY'", "TimeZone = 'Asia/Kolkata'"]) {
        await db.query(`SET ${settings}`)
        const { rows } = await db.query<{ c: string | null; j: string | null }>(
          `SELECT ${sqlRfc3339('x')} AS c, ${sqlRfc3339Json('x')} AS j
             FROM unnest($1::timestamptz[] || NULL::timestamptz) AS x`,
          [EDGES],
        )
        expect(rows).toHaveLength(EDGES.length + 1)
        for (const r of rows) expect(rfc3339FromJson(r.j)).toBe(trimRfc3339(r.c))
      }
    } finally {
      db.release()
    }
  })
})
