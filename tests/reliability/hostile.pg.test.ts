import { rootUrl } from '@synchro/test-harness/pg'
import { expect, it } from 'vitest'
import { runHostile } from './scenarios/hostile.js'

const seed = Number(process.env.RELIABILITY_SEED ?? 20261126)

it('1000 generated malformed requests: 4xx JSON or per-record rejections, never 500 or a dropped connection; DB unchanged', {
  timeout: 180_000,
}, async () => {
  const report = await runHostile({ root: rootUrl(), bodies: 1000, seed })
  console.log(
    `[reliability hostile] seed=${seed}`,
    JSON.stringify({ ...report, violations: report.violations.slice(0, 20) }),
  )
  expect(report.violations, `fast-check seed ${seed}`).toEqual([])
})
