/**
 * The "small rooms" rule, measured: package sources (tests and test helpers excluded) stay under FILE_LIMIT lines,
 * and no function or class body runs over BODY_LIMIT lines unless the comment right above it says why it must be one
 * piece (a line containing `one piece:`).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'

export const FILE_LIMIT = 450
export const BODY_LIMIT = 150
/** The marker a leading comment carries when a long body is long on purpose. */
export const ONE_PIECE = 'one piece:'

const ROOT = join(import.meta.dirname, '..', '..')

export interface Oversize {
  file: string
  kind: 'file' | 'body'
  name: string
  lines: number
}

function isTestPath(path: string): boolean {
  return /\.test\.tsx?$/.test(path) || /\/(test|testing)\//.test(path)
}

function sourceFiles(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sourceFiles(path))
    else if (/\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts') && !isTestPath(path)) out.push(path)
  }
  return out
}

function nameOf(node: ts.Node, sf: ts.SourceFile): string {
  const named = node as { name?: ts.Node }
  if (named.name) return named.name.getText(sf)
  const parent = node.parent
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText(sf)
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText(sf)
  return '(anonymous)'
}

/** The statement a body's explanation would be written above (a declaration, or the variable statement holding it). */
function commentAnchor(node: ts.Node): ts.Node {
  let n: ts.Node = node
  while (n.parent && (ts.isVariableDeclaration(n.parent) || ts.isVariableDeclarationList(n.parent))) n = n.parent
  if (n.parent && ts.isVariableStatement(n.parent)) n = n.parent
  return n
}

function explained(node: ts.Node, sf: ts.SourceFile): boolean {
  const anchor = commentAnchor(node)
  const ranges = ts.getLeadingCommentRanges(sf.text, anchor.getFullStart()) ?? []
  return ranges.some((r) => sf.text.slice(r.pos, r.end).toLowerCase().includes(ONE_PIECE))
}

function lineSpan(node: ts.Node, sf: ts.SourceFile): number {
  const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line
  const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line
  return end - start + 1
}

/** Every package source file or body over its limit, repository-relative. */
export function findOversize(root: string = ROOT): Oversize[] {
  const found: Oversize[] = []
  const packages = join(root, 'packages')
  for (const pkg of readdirSync(packages)) {
    let files: string[]
    try {
      files = sourceFiles(join(packages, pkg, 'src'))
    } catch {
      continue
    }
    for (const path of files) {
      const text = readFileSync(path, 'utf8')
      const file = relative(root, path)
      const lines = text.split('\n').length
      if (lines > FILE_LIMIT) found.push({ file, kind: 'file', name: file, lines })
      const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true)
      const visit = (node: ts.Node): void => {
        const isBody =
          ts.isFunctionDeclaration(node) ||
          ts.isMethodDeclaration(node) ||
          ts.isFunctionExpression(node) ||
          ts.isArrowFunction(node) ||
          ts.isConstructorDeclaration(node) ||
          ts.isClassDeclaration(node) ||
          ts.isClassExpression(node)
        if (isBody) {
          const span = lineSpan(node, sf)
          if (span > BODY_LIMIT && !explained(node, sf)) {
            found.push({ file, kind: 'body', name: nameOf(node, sf), lines: span })
          }
        }
        ts.forEachChild(node, visit)
      }
      visit(sf)
    }
  }
  return found
}
