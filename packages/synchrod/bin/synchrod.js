#!/usr/bin/env node
// synchrod launcher. In a checkout (src/ present) it runs the TypeScript sources through tsx, so `npx synchrod`
// works without a build; a published package runs dist/. It stays in this process (no child process): signals,
// exit codes and SIGKILL reach the daemon itself, so a killed daemon never leaves an orphan holding the WAL leader lock.
import { existsSync } from 'node:fs'
import { register } from 'node:module'
import { fileURLToPath } from 'node:url'

const source = new URL('../src/main.ts', import.meta.url)

if (existsSync(fileURLToPath(source))) {
  // Workspace packages export their TypeScript under the `source` condition (like `node --conditions=source`).
  const addSourceCondition = `export async function resolve(specifier, context, next) {
    const conditions = context.conditions.includes('source') ? context.conditions : [...context.conditions, 'source']
    return next(specifier, { ...context, conditions })
  }`
  register(`data:text/javascript,${encodeURIComponent(addSourceCondition)}`)
  const { register: registerTsx } = await import('tsx/esm/api')
  registerTsx()
  await import(source.href)
} else {
  await import(new URL('../dist/main.js', import.meta.url).href)
}
