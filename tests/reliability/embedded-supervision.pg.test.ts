import { expect, it } from 'vitest'
import { runEmbeddedSupervision } from './scenarios/embedded-supervision.js'

it('embedded PostgreSQL: random per-folder password, 0600 state files; a killed postmaster is restarted with nothing lost, or the daemon exits non-zero', {
  timeout: 300_000,
}, async () => {
  const report = await runEmbeddedSupervision({ kills: 2 })
  console.log('[reliability embedded-supervision]', JSON.stringify(report))
  expect(report.violations).toEqual([])
  expect(report.acknowledged).toBeGreaterThan(0)
})
