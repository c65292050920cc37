import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runLibrarySetup } from './scenarios/library-setup.js'

it('without a logger, startWalConsumer and createEngine report a database that cannot capture changes at error level, with the fix', {
  timeout: 240_000,
}, async () => {
  const report = await runLibrarySetup({ root: rootUrl() })
  console.log('[reliability library-setup]', JSON.stringify(report))
  expect(report.violations).toEqual([])
})
