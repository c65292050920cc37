/**
 * The public surface of every published package: for each export subpath in its package.json, the names it exports
 * and what kind of thing each is. `api-surface.test.ts` compares it with the committed `surface.json`, so a change
 * to what users can import shows up as a diff in review; `npm run api:update` rewrites the file after a deliberate
 * change.
 */
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const SNAPSHOT = join(ROOT, 'scripts/api/surface.json')

/** Packages whose surface is checked (the demo app is private and exports nothing). */
const PACKAGES = ['protocol', 'server', 'client', 'react', 'synchrod']

/** package name → subpath ('.', './node', …) → export name → kind. */
export type Surface = { [pkg: string]: { [subpath: string]: { [name: string]: string } } }

interface ExportCondition {
  source?: string
}

function kindOf(symbol: ts.Symbol, checker: ts.TypeChecker): string {
  const s = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
  const f = s.flags
  if (f & ts.SymbolFlags.Class) return 'class'
  if (f & ts.SymbolFlags.Function) return 'function'
  if (f & ts.SymbolFlags.Enum) return 'enum'
  if (f & ts.SymbolFlags.Variable) return 'const'
  if (f & ts.SymbolFlags.Interface) return 'interface'
  if (f & ts.SymbolFlags.TypeAlias) return 'type'
  if (f & ts.SymbolFlags.Module) return 'namespace'
  return 'other'
}

/** Computes the surface from the sources (the `source` condition of each export). */
export function computeSurface(): Surface {
  const entries: { pkg: string; subpath: string; file: string }[] = []
  for (const dir of PACKAGES) {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'packages', dir, 'package.json'), 'utf8')) as {
      name: string
      exports: { [subpath: string]: ExportCondition }
    }
    for (const [subpath, cond] of Object.entries(manifest.exports)) {
      if (!cond.source) throw new Error(`${manifest.name} export ${subpath} has no "source" condition`)
      entries.push({ pkg: manifest.name, subpath, file: join(ROOT, 'packages', dir, cond.source) })
    }
  }
  const program = ts.createProgram(
    entries.map((e) => e.file),
    {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      customConditions: ['source'],
      jsx: ts.JsxEmit.ReactJSX,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
    },
  )
  const checker = program.getTypeChecker()
  const surface: Surface = {}
  for (const e of entries) {
    const source = program.getSourceFile(e.file)
    if (!source) throw new Error(`cannot read ${e.file}`)
    const module = checker.getSymbolAtLocation(source)
    const names: { [name: string]: string } = {}
    for (const symbol of module ? checker.getExportsOfModule(module) : []) {
      names[symbol.name] = kindOf(symbol, checker)
    }
    const sorted = Object.fromEntries(Object.entries(names).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    surface[e.pkg] ??= {}
    ;(surface[e.pkg] as Surface[string])[e.subpath] = sorted
  }
  return surface
}

/** The surface as committed: stable key order, one export per line, trailing newline. */
export function formatSurface(surface: Surface): string {
  return `${JSON.stringify(surface, null, 2)}\n`
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { writeFileSync } = await import('node:fs')
  writeFileSync(SNAPSHOT, formatSurface(computeSurface()))
  console.log(`wrote ${SNAPSHOT}`)
}
