import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runClientAborts } from './scenarios/client-aborts.js'

it('clients dropping the connection mid-body are counted as aborts, never as 503s; complete requests keep working', {
  timeout: 180_000,
}, async () => {
  const report = await runClientAborts({ root: rootUrl(), aborts: 50 })
  console.log('[reliability client-aborts]', JSON.stringify(report))
  expect(report.violations).toEqual([])
})
