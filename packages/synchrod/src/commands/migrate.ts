import { ensureTableIndexes, type Registry, runMigrations, tableIndexes } from '@synchro/server'
import { ddlWatchSql, INFRASTRUCTURE_SQL } from '@synchro/server/internal'
import { buildRegistry, type Settings } from '../config.js'
import { describeUrl, openDatabase } from '../database.js'
import type { Log } from '../logger.js'
import { progressLine } from '../progress.js'

/**
 * `synchrod migrate`: prints the infrastructure DDL and, when tables are configured, the indexes they need (the
 * `CONCURRENTLY` form, for your own migration tool on a live database); `--apply` runs both idempotently.
 */
export async function migrate(settings: Settings, log: Log): Promise<void> {
  const o = settings.options
  const registry = configuredRegistry(settings)
  if (!o.apply) {
    const indexes = registry ? tableIndexes(registry).map((ix) => `${ix.sql({ concurrently: true })};\n`) : []
    const header = indexes.length > 0 ? ['\n-- Indexes the configured tables need (per-user snapshot reads).\n'] : []
    const watch = [
      '\n-- The DDL watch (needs a superuser; without it every request reads the catalogs to notice schema changes).\n',
      '-- Written for sync_* tables in schema public (the first of the search_path): adjust if yours differ.\n',
      ...ddlWatchSql('public').map((s) => `${s};\n`),
    ]
    process.stdout.write([`${INFRASTRUCTURE_SQL.trim()}\n`, ...watch, ...header, ...indexes].join(''))
    return
  }
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log })
  try {
    const line = progressLine()
    const { ddlWatch } = await runMigrations(db.pool, {
      onProgress: ({ done, total, statement }) => line.update(`migrate: ${done}/${total} ${statement}`.trimEnd()),
    })
    line.done()
    const where = db.embedded ? 'the embedded PostgreSQL' : describeUrl(db.url)
    process.stdout.write(`migrations applied to ${where}\n`)
    if (!ddlWatch.installed) {
      process.stdout.write(
        `no DDL watch (${ddlWatch.reason}): schema changes are checked in the catalogs on every request; as a superuser run:\n${ddlWatch.sql.join(';\n')};\n`,
      )
    }
    if (registry) {
      const r = await ensureTableIndexes(db.pool, registry)
      for (const name of r.created) process.stdout.write(`created index ${name}\n`)
      for (const table of r.missingTables) process.stdout.write(`table ${table} does not exist: no index created\n`)
      for (const f of r.failed) process.stdout.write(`could not create index ${f.name} (${f.error}): run ${f.sql}\n`)
    }
  } finally {
    await db.close()
  }
}

/** The configured tables, if any: without tables, migrate is about the sync_* tables alone. */
function configuredRegistry(settings: Settings): Registry | undefined {
  const demo = (settings.options as { demo?: boolean }).demo === true
  if (!demo && settings.file.tables.length === 0) return undefined
  return buildRegistry(settings)
}
