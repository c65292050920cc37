import { createEngine } from '@synchro/server'
import { buildRegistry, type Settings } from '../config.js'
import { openDatabase } from '../database.js'
import type { Log } from '../logger.js'
import { percent, progressLine } from '../progress.js'

/** `synchrod compact`: one compaction run (deactivate stale clients, delete what every client has pulled); JSON out. */
export async function compact(settings: Settings, log: Log): Promise<void> {
  const o = settings.options
  const registry = buildRegistry(settings)
  const db = await openDatabase({ databaseUrl: o.databaseUrl, dataDir: o.dataDir, log })
  try {
    const engine = await createEngine({
      pool: db.pool,
      registry,
      logger: log,
      // No intervalMs: a one-shot run must not start the background timer.
      compaction: { staleThresholdMs: o.compactionStaleThresholdMs, batchSize: o.compactionBatchSize },
    })
    try {
      const line = progressLine()
      const result = await engine.runCompaction({
        onProgress: ({ deletedEntries, totalEntries }) =>
          line.update(
            `compact: deleted ${deletedEntries} of ${totalEntries} changelog entries (${percent(deletedEntries, totalEntries)})`,
          ),
      })
      line.done()
      process.stdout.write(`${JSON.stringify(result)}\n`)
    } finally {
      await engine.close()
    }
  } finally {
    await db.close()
  }
}
