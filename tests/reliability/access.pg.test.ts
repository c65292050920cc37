import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runAccess } from './scenarios/access.js'

it('cross-user reads/writes through every endpoint (with and without RLS), JWT attacks and the rate-limit hook', {
  timeout: 120_000,
}, async () => {
  const report = await runAccess({ root: rootUrl() })
  console.log('[reliability access]', JSON.stringify(report))
  expect(report.violations).toEqual([])
  expect(report.checks).toBeGreaterThan(50)
})
