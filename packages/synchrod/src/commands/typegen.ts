import { writeFile } from 'node:fs/promises'
import { HEADERS, ROUTES, type SchemaResponse } from '@synchro/protocol'
import { createEngine } from '@synchro/server'
import { buildRegistry, type Settings } from '../config.js'
import { openDatabase, StartupError } from '../database.js'
import { DEMO_SCHEMA_SQL } from '../demo.js'
import type { Log } from '../logger.js'
import { generateTypes } from '../typegen/generate.js'

/**
 * `synchrod typegen`: writes TypeScript row types for the synced tables, from a running server's `/sync/schema`
 * (`--schema-url`) or else from the database's schema contract for the configured tables (as the server computes it).
 */
export async function typegen(settings: Settings, log: Log): Promise<void> {
  const o = settings.options
  const schema = o.schemaUrl ? await fetchSchema(o.schemaUrl, o.schemaToken) : await schemaFromDatabase(settings, log)
  const text = generateTypes(schema)
  if (!o.output) {
    process.stdout.write(text)
    return
  }
  await writeFile(o.output, text)
  process.stderr.write(`wrote ${schema.tables.length} row types to ${o.output}\n`)
}

/** GET `<url>/sync/schema` (or the URL itself when it already names the route). */
export async function fetchSchema(url: string, token: string | undefined): Promise<SchemaResponse> {
  const route = ROUTES.schema.path
  const target = url.replace(/\/+$/, '').endsWith(route) ? url : `${url.replace(/\/+$/, '')}${route}`
  // Without a token the development identity header is enough for a server running without JWT auth.
  const headers: Record<string, string> = token
    ? { [HEADERS.authorization]: `Bearer ${token}` }
    : { [HEADERS.userId]: 'typegen' }
  let res: Response
  try {
    res = await fetch(target, { headers })
  } catch (err) {
    throw new StartupError(`typegen: cannot reach ${target}: ${(err as Error).message}`)
  }
  const body = await res.text()
  if (res.status !== 200) throw new StartupError(`typegen: ${target} answered ${res.status}: ${body.slice(0, 200)}`)
  const schema = JSON.parse(body) as SchemaResponse
  if (!Array.isArray(schema.tables)) throw new StartupError(`typegen: ${target} did not return a schema`)
  return schema
}

async function schemaFromDatabase(settings: Settings, log: Log): Promise<SchemaResponse> {
  const o = settings.options
  const registry = buildRegistry(settings)
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log })
  try {
    if (o.demo) await db.pool.query(DEMO_SCHEMA_SQL)
    const engine = await createEngine({ pool: db.pool, registry, logger: log })
    try {
      return await engine.schema()
    } finally {
      await engine.close()
    }
  } finally {
    await db.close()
  }
}
