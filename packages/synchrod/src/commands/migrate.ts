import { runMigrations } from '@synchro/server'
import { INFRASTRUCTURE_SQL } from '@synchro/server/internal'
import type { Settings } from '../config.js'
import { describeUrl, openDatabase } from '../database.js'
import type { Log } from '../logger.js'
import { progressLine } from '../progress.js'

/** `synchrod migrate`: prints the infrastructure DDL (for your own migration tool); `--apply` runs it idempotently. */
export async function migrate(settings: Settings, log: Log): Promise<void> {
  const o = settings.options
  if (!o.apply) {
    process.stdout.write(`${INFRASTRUCTURE_SQL.trim()}\n`)
    return
  }
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log })
  try {
    const line = progressLine()
    await runMigrations(db.pool, {
      onProgress: ({ done, total, statement }) => line.update(`migrate: ${done}/${total} ${statement}`.trimEnd()),
    })
    line.done()
    process.stdout.write(`migrations applied to ${db.embedded ? 'the embedded PostgreSQL' : describeUrl(db.url)}\n`)
  } finally {
    await db.close()
  }
}
