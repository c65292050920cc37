import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runAbuse } from './scenarios/abuse.js'

it('daemon under abuse: hostile identities → 400/401 JSON, over the bounds → 429/503 + Retry-After, RSS bounded, /healthz answers, nothing lost', {
  timeout: 300_000,
}, async () => {
  const report = await runAbuse({ root: rootUrl(), pushes: 10 })
  console.log('[reliability abuse]', JSON.stringify(report))
  expect(report.violations).toEqual([])
})
