import { type ChildProcess, spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The real launcher of the workspace's synchrod package, as users run it. */
// Built from the path string, not `new URL()`: DOM test environments (happy-dom) replace the global URL class.
export const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../packages/synchrod/bin/synchrod.js')

/** Environment for a child: nothing synchrod reads leaks in from the test runner. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const k of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'NODE_OPTIONS']) if (process.env[k]) env[k] = process.env[k]
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v
  return env
}

export interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Runs a command to completion. */
export function run(
  args: string[],
  opts: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`synchrod ${args.join(' ')} timed out\n${stdout}\n${stderr}`))
    }, opts.timeoutMs ?? 30_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

export interface Daemon {
  proc: ChildProcess
  /** Base URL from the "listening on" line. */
  url: string
  output(): string
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGKILL if still running (test cleanup). */
  kill(): void
}

/** Starts a long-running command and waits for its ready line. */
export function startDaemon(
  args: string[],
  opts: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<Daemon> {
  const proc = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd })
  let out = ''
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  )
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL')
      reject(new Error(`daemon not ready in time:\n${out}`))
    }, opts.timeoutMs ?? 45_000)
    const onData = (d: Buffer) => {
      out += d.toString()
      const m = /listening on (http:\/\/[^\s"]+)/.exec(out)
      if (m?.[1]) {
        clearTimeout(timer)
        resolve({
          proc,
          url: m[1].replace('localhost', '127.0.0.1'),
          output: () => out,
          exited,
          kill: () => {
            if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
          },
        })
      }
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()))
    void exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`daemon exited (${code ?? signal}) before it was ready:\n${out}`))
    })
  })
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export async function poll<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  everyMs = 100,
): Promise<T> {
  const until = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > until)
      throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
