import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import { errorsDoc } from './gen-errors-doc.js'

it('docs/errors.md is generated from the error registry (run npm run docs:errors)', () => {
  expect(readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')).toBe(errorsDoc())
})
