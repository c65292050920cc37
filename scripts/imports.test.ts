/**
 * Repository rules about where code may reach (docs/testing.md):
 * - a relative import never climbs out of its package (the nearest folder with a package.json): code in another
 *   package is imported by its name, through what that package exports;
 * - test helpers never live in a package's `src/` (which is what gets built and published): code under
 *   `packages/<name>/src` that imports vitest is a test file, or a test kit the package publishes on purpose.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SKIP = new Set(['node_modules', 'dist', '.git', '.synchro', 'results'])
const CODE = /\.(ts|tsx|mts|js|mjs)$/

/**
 * Benchmarks measure internals that no package exports (the engine's batch applier, the client's apply step): they
 * are the one place allowed to import another package's sources by path.
 */
const MAY_REACH_INTO_SOURCES = ['bench/']

/** Test kits a package publishes for its users (documented in docs/client.md). */
const PUBLIC_TEST_KITS = ['packages/client/src/driver-conformance.ts']

function codeFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue
    const p = path.join(dir, e.name)
    if (e.isDirectory()) codeFiles(p, out)
    else if (CODE.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p)
  }
  return out
}

const packageRoots = new Map<string, string>()
/** The folder of the nearest package.json above `file`. */
function packageOf(file: string): string {
  let dir = path.dirname(file)
  for (;;) {
    const known = packageRoots.get(dir)
    if (known !== undefined) return known
    if (existsSync(path.join(dir, 'package.json')) || dir === ROOT) {
      packageRoots.set(dir, dir)
      return dir
    }
    dir = path.dirname(dir)
  }
}

/** Module specifiers of static imports, re-exports, dynamic imports and requires. */
function specifiers(source: string): string[] {
  const found: string[] = []
  const patterns = [
    /\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ]
  for (const re of patterns) for (const m of source.matchAll(re)) found.push(m[1]!)
  return found
}

const rel = (p: string) => path.relative(ROOT, p).split(path.sep).join('/')
const files = codeFiles(ROOT)

describe('imports', () => {
  it('finds the specifiers of every import form', () => {
    const src = `import a from '../a.js'\nimport type { B } from "../../b.js"\nexport { c } from './c.js'\nimport './d.js'\nconst e = await import('../e.js')\nexport * from '../f.js'`
    expect(specifiers(src).sort()).toEqual(['../../b.js', '../a.js', '../e.js', '../f.js', './c.js', './d.js'])
  })

  it('no relative import climbs out of its package', () => {
    expect(files.length).toBeGreaterThan(100)
    const climbing: string[] = []
    for (const file of files) {
      const own = packageOf(file)
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue
        const target = path.resolve(path.dirname(file), spec)
        const theirs = packageOf(target)
        if (theirs === own) continue
        const fromBench = MAY_REACH_INTO_SOURCES.some((p) => rel(file).startsWith(p))
        if (fromBench && /^packages\/[^/]+\/src\//.test(rel(target))) continue
        climbing.push(`${rel(file)}: '${spec}' reaches into ${rel(theirs) || 'the root package'}`)
      }
    }
    expect(climbing, 'import these through the package name (see docs/testing.md)').toEqual([])
  })

  it('test helpers live outside packages/*/src (tests and published test kits excepted)', () => {
    const helpers = files.filter((file) => {
      const r = rel(file)
      if (!/^packages\/[^/]+\/src\//.test(r) || /\.test\.tsx?$/.test(r) || PUBLIC_TEST_KITS.includes(r)) return false
      if (/\/(test|tests|testing|fixtures)\//.test(r)) return true
      return specifiers(readFileSync(file, 'utf8')).some((s) => s === 'vitest' || s.startsWith('@synchro/test-harness'))
    })
    expect(helpers, 'move them to packages/<name>/test/ or test-harness/src/ (see docs/testing.md)').toEqual([])
  })
})
