/**
 * op-sqlite's own Node build (`node/dist`, over better-sqlite3), loaded by path: the package's `source` export
 * condition, which this repository resolves for its workspaces, would select its React Native sources instead.
 * (vitest.config.ts inlines it: its extensionless relative import does not load in Node's ESM loader.)
 */
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { SqliteDriver } from '../src/driver.js'
import { type OpSqliteDatabase, opSqliteDriver } from '../src/drivers/op-sqlite/index.js'

const pkgJson = createRequire(import.meta.url).resolve('@op-engineering/op-sqlite/package.json')

interface OpSqliteNode {
  open(options: { name: string; location?: string }): OpSqliteDatabase
}

let loaded: Promise<OpSqliteNode> | undefined

/** Opens `file` with op-sqlite's `open({ name, location })` and wraps it in the SDK's op-sqlite driver. */
export async function openOpSqlite(file: string): Promise<SqliteDriver> {
  loaded ??= import(pathToFileURL(path.join(path.dirname(pkgJson), 'node/dist/index.js')).href) as Promise<OpSqliteNode>
  const op = await loaded
  return opSqliteDriver(op.open({ name: path.basename(file), location: path.dirname(file) }))
}
