import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runCompactionPinning } from './scenarios/compaction-pinning.js'

it('a client that only pushes is deactivated by pull progress; compaction passes it; it gets snapshot_required', {
  timeout: 180_000,
}, async () => {
  const report = await runCompactionPinning({
    root: rootUrl(),
    healthyClients: 2,
    staleMs: 1_500,
    durationMs: 6_000,
    compactEveryMs: 250,
  })
  console.log('[reliability compaction-pinning]', JSON.stringify(report))
  expect(report.violations).toEqual([])
})
