import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runScaleOut } from './scenarios/scale-out.js'

const seed = Number(process.env.RELIABILITY_SEED ?? 20261126)

it('three instances on one database: cross-instance pokes, capture-leader SIGKILL → takeover, nothing lost or duplicated', {
  timeout: 300_000,
}, async () => {
  const report = await runScaleOut({ root: rootUrl(), instances: 3, probes: 2, kills: 1, seed })
  console.log(
    `[reliability scale-out] seed=${seed}`,
    JSON.stringify({ ...report, violations: report.violations.slice(0, 20) }),
  )
  expect(report.violations, `seed ${seed}`).toEqual([])
  expect(report.changelog.lost + report.changelog.duplicated).toBe(0)
  expect(report.takeoverMs.n).toBe(1)
  expect(report.directAllInstancesMs.n).toBeGreaterThan(0)
  expect(report.pushes.acked).toBeGreaterThan(0)
})
