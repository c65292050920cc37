import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runDeepJson } from './scenarios/deep-json.js'

it('data nested beyond the limit → rejected_terminal invalid_data; stored rows too deep to render never fail a page', {
  timeout: 120_000,
}, async () => {
  const report = await runDeepJson({ root: rootUrl(), storedRows: 2 })
  console.log('[reliability deep-json]', JSON.stringify(report))
  expect(report.violations).toEqual([])
})
