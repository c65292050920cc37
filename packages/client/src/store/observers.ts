/**
 * Change observation on the SDK's connection: TEMP triggers bump a per-table counter in a TEMP table. They live only
 * on this connection, are never written to the database file, and exist only for tables somebody observes (plus the
 * pending-changes queue, which the debounced push observes). After each operation the counters tell what changed.
 */
import type { SqliteDriver, SqliteExecutor } from '../driver.js'
import { PENDING_TABLE } from '../schema/triggers.js'
import { quoteIdent, quoteLiteral } from './sql.js'

export const OBS_TABLE_DDL =
  'CREATE TEMP TABLE IF NOT EXISTS _synchro_observed (name TEXT PRIMARY KEY, n INTEGER NOT NULL)'
const OBS_TABLE = 'temp._synchro_observed'

function obsTriggerName(op: 'i' | 'u' | 'd', table: string): string {
  return `_synchro_obs_${op}_${table}`
}

export class ChangeObservers {
  private readonly observed = new Map<string, number>([[PENDING_TABLE, 1]])
  private readonly installed = new Set<string>()
  private stale = true
  private lastCounts = new Map<string, number>()

  /** Trigger (re)installation is due: after DDL, a new observation, or an observed table still missing. */
  get due(): boolean {
    return this.stale || this.installed.size < this.observed.size
  }

  /** Marks the triggers for re-installation (after DDL: dropped or new tables). */
  schemaChanged(): void {
    this.stale = true
  }

  /** Starts observing `tables`; returns a function that stops. */
  observe(tables: readonly string[]): () => void {
    for (const t of tables) {
      this.observed.set(t, (this.observed.get(t) ?? 0) + 1)
      if (!this.installed.has(t)) this.stale = true
    }
    let done = false
    return () => {
      if (done) return
      done = true
      for (const t of tables) {
        const n = (this.observed.get(t) ?? 1) - 1
        if (n <= 0) this.observed.delete(t)
        else this.observed.set(t, n)
      }
      // Unused triggers stay until the next install pass drops them; they only cost a counter bump.
      this.stale = true
    }
  }

  /** Creates the missing observer triggers, drops unused ones, and takes the counters as the new baseline. */
  async install(d: SqliteDriver): Promise<void> {
    const existing = new Set(
      (await d.all<{ name: string }>(`SELECT name FROM main.sqlite_master WHERE type IN ('table', 'view')`)).map(
        (r) => r.name,
      ),
    )
    const triggers = new Set(
      (await d.all<{ name: string }>(`SELECT name FROM temp.sqlite_master WHERE type = 'trigger'`)).map((r) => r.name),
    )
    const ddl: string[] = []
    this.installed.clear()
    for (const table of this.observed.keys()) {
      if (!existing.has(table)) continue
      this.installed.add(table)
      if (triggers.has(obsTriggerName('i', table))) continue
      const bump = `UPDATE ${OBS_TABLE} SET n = n + 1 WHERE name = ${quoteLiteral(table)};`
      ddl.push(`INSERT OR IGNORE INTO ${OBS_TABLE} (name, n) VALUES (${quoteLiteral(table)}, 0);`)
      for (const [op, ev] of [
        ['i', 'INSERT'],
        ['u', 'UPDATE'],
        ['d', 'DELETE'],
      ] as const) {
        ddl.push(
          `CREATE TEMP TRIGGER IF NOT EXISTS ${quoteIdent(obsTriggerName(op, table))} AFTER ${ev} ON main.${quoteIdent(table)} BEGIN ${bump} END;`,
        )
      }
    }
    for (const name of triggers) {
      const m = /^_synchro_obs_[iud]_(.*)$/.exec(name)
      if (m && !this.installed.has(m[1]!)) ddl.push(`DROP TRIGGER IF EXISTS temp.${quoteIdent(name)};`)
    }
    if (ddl.length > 0) await d.exec(ddl.join('\n'))
    this.stale = false
    this.lastCounts = await readCounts(d)
  }

  /** The observed tables whose counters moved since the last call (or install). */
  async collect(d: SqliteExecutor): Promise<string[]> {
    const counts = await readCounts(d)
    const changed: string[] = []
    for (const [name, n] of counts) if (this.lastCounts.get(name) !== n) changed.push(name)
    this.lastCounts = counts
    return changed
  }
}

async function readCounts(d: SqliteExecutor): Promise<Map<string, number>> {
  const rows = await d.all<{ name: string; n: number }>(`SELECT name, n FROM ${OBS_TABLE}`)
  return new Map(rows.map((r) => [r.name, r.n]))
}
