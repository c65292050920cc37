import { applyRlsPolicies, rlsStatements } from '@synchro/server'
import { buildRegistry, type Settings } from '../config.js'
import { describeUrl, openDatabase } from '../database.js'
import { DEMO_SCHEMA_SQL } from '../demo.js'
import type { Log } from '../logger.js'

/**
 * `synchrod rls`: prints the row-level-security policies for the configured tables (idempotent form, safe to re-run);
 * `--apply` applies them in one transaction. Needs a role that owns the tables.
 */
export async function rls(settings: Settings, log: Log): Promise<void> {
  const o = settings.options
  const registry = buildRegistry(settings)
  if (!o.apply) {
    process.stdout.write(`${rlsStatements(registry, { idempotent: true }).join(';\n')};\n`)
    return
  }
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log })
  try {
    if (o.demo) await db.pool.query(DEMO_SCHEMA_SQL)
    await applyRlsPolicies(db.pool, registry)
    const where = db.embedded ? 'the embedded PostgreSQL' : describeUrl(db.url)
    process.stdout.write(`RLS policies applied to ${registry.tables().length} tables in ${where}\n`)
  } finally {
    await db.close()
  }
}
