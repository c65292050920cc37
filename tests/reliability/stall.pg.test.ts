import { expect, it } from 'vitest'
import { runStall } from './scenarios/stall.js'

it('PostgreSQL frozen (SIGSTOP): 503 + Retry-After within the deadline, recovery after SIGCONT, nothing lost or applied after a 503', {
  timeout: 240_000,
}, async () => {
  const report = await runStall({ stallMs: 6_000, clients: 3, deadlineMs: 1_000 })
  console.log('[reliability stall]', JSON.stringify({ ...report, violations: report.violations.slice(0, 20) }))
  expect(report.violations).toEqual([])
  expect(report.statuses['503'] ?? 0, 'the stall was seen by clients').toBeGreaterThan(0)
})
