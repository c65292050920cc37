import { expect, it } from 'vitest'
import { runLogHygiene } from './scenarios/log-hygiene.js'

it('row values PostgreSQL quotes in errors never reach a log line above debug (embedded PostgreSQL log, engine)', {
  timeout: 240_000,
}, async () => {
  const report = await runLogHygiene()
  console.log('[reliability log-hygiene]', JSON.stringify({ ...report, violations: report.violations.slice(0, 20) }))
  expect(report.violations).toEqual([])
  expect(report.leaks).toBe(0)
})
