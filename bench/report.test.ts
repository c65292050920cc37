import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { DOC_FILE, headline, SUMMARY_FILE, withHeadline } from './report.js'

describe('docs/performance.md headline table', () => {
  it('is the one generated from bench/results/summary.json (npm run bench:report)', () => {
    const summary = JSON.parse(readFileSync(SUMMARY_FILE, 'utf8'))
    const doc = readFileSync(DOC_FILE, 'utf8')
    expect(withHeadline(doc, summary)).toBe(doc)
  })

  it('marks each target met or not from the numbers', () => {
    const table = headline({ pull: { changes: 100_000, ratio: 0.49 }, push: { records: 10, batch: 1, ratio: 0.6 } })
    expect(table).toContain('| pull catch-up, 100,000 changes | 0.49 | ≥ 0.5 | ✗ |')
    expect(table).toMatch(/\| push, 10 records in batches of 1 \| 0\.6 .*\| ≥ 0\.6 \| ✓ \|/)
  })
})
