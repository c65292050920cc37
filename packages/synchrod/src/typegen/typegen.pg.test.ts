/**
 * `synchrod typegen` against a real database (the demo schema) and a real server's /sync/schema; the generated module
 * is typechecked with a usage file through the TypeScript compiler API.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createEngine, createSyncHandler, headerAuth, Registry } from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { createTestDatabase, type TestDatabase } from '@synchro/test-harness/pg'
import { run } from '@synchro/test-harness/synchrod'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_SCHEMA_SQL, DEMO_TABLES } from '../demo.js'

const PACKAGE_DIR = fileURLToPath(new URL('../../', import.meta.url))

let db: TestDatabase
let dir: string

beforeAll(async () => {
  db = await createTestDatabase('synchrod_typegen')
  // Inside the package, so `@synchro/client` resolves through the workspace's node_modules.
  dir = await mkdtemp(path.join(PACKAGE_DIR, '.typegen-test-'))
}, 60_000)

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
  await db?.drop()
})

/** Typechecks `files` with strict settings in one program; returns each file's diagnostics. */
function typecheck(files: string[]): string[][] {
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    customConditions: ['source'],
    skipLibCheck: true,
    types: ['node'],
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
  })
  const diagnostics = ts.getPreEmitDiagnostics(program)
  const unattributed = diagnostics.filter((d) => d.file === undefined)
  if (unattributed.length > 0) throw new Error(ts.flattenDiagnosticMessageText(unattributed[0]!.messageText, '\n'))
  return files.map((f) =>
    diagnostics
      .filter((d) => d.file !== undefined && path.resolve(d.file.fileName) === f)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')),
  )
}

const USAGE = `import type { SynchroClient } from '@synchro/client'
import type { OrderDetails, Orders, Tables } from './synchro-types.js'

export async function totals(client: SynchroClient): Promise<number> {
  const orders = await client.query<Orders>('SELECT * FROM orders WHERE deleted_at IS NULL')
  let sum = 0
  for (const o of orders) {
    const id: string = o.id
    const cents: number = o.total_cents
    const due: string | null = o.required_date
    const meta: string = o.metadata
    sum += cents + id.length + (due?.length ?? 0) + meta.length
  }
  const line = await client.queryOne<OrderDetails>('SELECT * FROM order_details LIMIT 1')
  const price: number | undefined = line?.unit_price
  const product = await client.queryOne<Tables['products']>('SELECT * FROM products LIMIT 1')
  const discontinued: 0 | 1 | undefined = product?.discontinued
  const thumbnail: Uint8Array | null | undefined = product?.thumbnail
  const tags: string | undefined = (await client.queryOne<Tables['categories']>('SELECT * FROM categories'))?.search_tags
  return sum + (price ?? 0) + (discontinued ?? 0) + (thumbnail?.length ?? 0) + (tags?.length ?? 0)
}
`

const MISUSE = `import type { SynchroClient } from '@synchro/client'
import type { Orders } from './synchro-types.js'

export async function wrong(client: SynchroClient): Promise<void> {
  const [o] = await client.query<Orders>('SELECT * FROM orders')
  const cents: string | undefined = o?.total_cents
  const missing = o?.no_such_column
  void cents
  void missing
}
`

describe('synchrod typegen', () => {
  it('generates row types for the demo schema from the database and from /sync/schema; a usage file typechecks', async () => {
    const out = path.join(dir, 'synchro-types.ts')
    const res = await run(['typegen', '--demo', '--output', out], { env: { DATABASE_URL: db.url }, timeoutMs: 60_000 })
    expect(res.stderr).toContain('wrote 4 row types')
    expect(res.code).toBe(0)
    const generated = await readFile(out, 'utf8')
    expect(generated).toContain('export interface OrderDetails {')
    expect(generated).toMatch(/total_cents: number/)
    expect(generated).toMatch(/required_date: string \| null/)

    // The same module from a running server's /sync/schema.
    const registry = new Registry()
    for (const t of DEMO_TABLES) registry.register(t)
    await db.pool.query(DEMO_SCHEMA_SQL)
    const engine = await createEngine({ pool: db.pool, registry })
    const server = http.createServer(toNodeListener(createSyncHandler(engine, { authenticate: headerAuth() })))
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const fromServer = await run(['typegen', '--schema-url', url], { timeoutMs: 60_000 })
      expect(fromServer.stderr).toBe('')
      expect(fromServer.stdout).toBe(generated)
    } finally {
      await new Promise<void>((r) => server.close(() => r()))
      await engine.close()
    }

    const usage = path.join(dir, 'usage.ts')
    const misuse = path.join(dir, 'misuse.ts')
    await writeFile(usage, USAGE)
    await writeFile(misuse, MISUSE)
    const [usageErrors, misuseErrors] = typecheck([usage, misuse])
    expect(usageErrors).toEqual([])
    expect(misuseErrors).toEqual([
      "Type 'number' is not assignable to type 'string'.",
      "Property 'no_such_column' does not exist on type 'Orders'.",
    ])
  }, 120_000)
})
