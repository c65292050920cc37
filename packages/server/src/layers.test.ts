import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = new URL('.', import.meta.url).pathname

/** Source files of the package (tests excluded), as paths relative to src/. */
function sources(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return sources(path)
    return e.name.endsWith('.ts') && !e.name.includes('.test.') ? [relative(SRC, path)] : []
  })
}

describe('server layers', () => {
  it('engine/ is only the composition root: nothing but the entry point imports it', () => {
    const offenders = sources().filter(
      (f) =>
        !f.startsWith('engine/') &&
        f !== 'index.ts' &&
        /from '\.\.?\/(\.\.\/)*engine\//.test(readFileSync(join(SRC, f), 'utf8')),
    )
    expect(offenders).toEqual([])
  })

  it('sync_clients appears in SQL only inside clients/ (and the migrations that create it)', () => {
    const offenders = sources().filter(
      (f) =>
        !f.startsWith('clients/') &&
        !f.startsWith('migrations/') &&
        /\b(FROM|JOIN|UPDATE|INTO)\s+sync_clients\b/i.test(readFileSync(join(SRC, f), 'utf8')),
    )
    expect(offenders).toEqual([])
  })
})
