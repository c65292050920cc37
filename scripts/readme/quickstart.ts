/**
 * The README's two quick starts as files: `extractQuickStart` finds the first code block under a heading, and
 * `startProgram` runs one with node the way a user would, waiting for a line of its output.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

/** The first fenced code block after `## <heading>` in README.md, with its language. */
export function extractQuickStart(heading: string): { lang: string; code: string } {
  const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8')
  const start = readme.indexOf(`\n## ${heading}\n`)
  if (start < 0) throw new Error(`README.md has no "## ${heading}" section`)
  const block = /\n```(\w+)\n([\s\S]*?)\n```\n/.exec(readme.slice(start))
  if (!block?.[1] || block[2] === undefined) throw new Error(`no code block under "## ${heading}"`)
  return { lang: block[1], code: `${block[2]}\n` }
}

export interface Program {
  proc: ChildProcess
  output(): string
  /** Resolves with the exit code once the program has ended. */
  exited: Promise<number | null>
}

/**
 * Runs `file` with node, resolving workspace packages to their TypeScript sources (the `source` condition through
 * tsx), so the test needs no build; the plain `node` + dist/ path is what `npm install` (prepare) gives users.
 */
export function startProgram(file: string, env: { [name: string]: string }, cwd: string, args: string[] = []): Program {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', file, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
  })
  let out = ''
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | null>((resolveExit) => proc.on('exit', (code) => resolveExit(code)))
  return { proc, output: () => out, exited }
}

/** Waits until the program's output matches `pattern`; fails with the output when it exits or time runs out. */
export async function waitForOutput(p: Program, pattern: RegExp, timeoutMs = 90_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs
  let ended = false
  void p.exited.then(() => (ended = true))
  for (;;) {
    const m = pattern.exec(p.output())
    if (m) return m
    if (ended) throw new Error(`program exited before printing ${pattern}:\n${p.output()}`)
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${p.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
