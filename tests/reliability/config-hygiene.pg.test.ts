import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runConfigHygiene } from './scenarios/config-hygiene.js'

it('blank or short auth options stop the binary naming the option; header mode only without auth options or with --dev-header-auth; flags before the command', {
  timeout: 240_000,
}, async () => {
  const report = await runConfigHygiene({ root: rootUrl() })
  console.log('[reliability config-hygiene]', JSON.stringify(report))
  expect(report.violations).toEqual([])
  expect(report.refusals.refused).toBe(report.refusals.cases)
  expect(report.starts.started).toBe(report.starts.cases)
})
