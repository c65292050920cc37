import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runLoad } from './scenarios/load.js'

it('50 clients push and pull for 10 s against the daemon: no errors, acknowledged records present, RSS recorded', {
  timeout: 180_000,
}, async () => {
  const report = await runLoad({ root: rootUrl(), clients: 50, seconds: 10 })
  console.log('[reliability load]', JSON.stringify(report))
  expect(report.violations).toEqual([])
  expect(report.errors).toBe(0)
  expect(report.rssMiB.peak).toBeLessThan(1024)
})
