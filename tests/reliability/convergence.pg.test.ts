import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runConvergence } from './scenarios/convergence.js'

const seed = Number(process.env.RELIABILITY_SEED ?? 20261126)

it('random offline edits on 5 SynchroClients with flaky connectivity converge; no accepted write is lost', {
  timeout: 180_000,
}, async () => {
  const report = await runConvergence({ root: rootUrl(), clients: 5, users: 2, rounds: 200, runs: 3, seed })
  console.log(
    `[reliability convergence] seed=${seed}`,
    JSON.stringify({ ...report, violations: report.violations.slice(0, 10) }),
  )
  expect(report.violations, `fast-check seed ${seed}`).toEqual([])
})
