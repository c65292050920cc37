// The synchrod binary as users run it (bin/synchrod.js, Northwind tables), on a fixed port so clients keep
// their URL across restarts.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { NORTHWIND_TABLES } from '@synchro/test-harness/northwind'
import { type Daemon, startDaemon } from '@synchro/test-harness/synchrod'
import { freePort } from 'synchrod/embedded'
import { slotFor } from './db.js'

export type { Daemon }
export { freePort }

export interface SynchrodOptions {
  db: { url: string; name: string }
  port: number
  env?: Record<string, string>
  args?: string[]
}

const cwd = mkdtempSync(path.join(tmpdir(), 'synchro-rel-daemon-'))
const config = path.join(cwd, 'northwind.config.json')
writeFileSync(config, JSON.stringify({ tables: NORTHWIND_TABLES }))

/**
 * Production path: the Northwind tables from a config file (the caller creates them first). Not `--demo`: its
 * schema SQL re-runs ALTER TABLE on every start, which deadlocks with concurrent writers (see bugs.pg.test.ts).
 */
export async function startSynchrod(o: SynchrodOptions): Promise<Daemon> {
  return startDaemon(['serve', '--config', config, ...(o.args ?? [])], {
    cwd,
    timeoutMs: 60_000,
    env: {
      DATABASE_URL: o.db.url,
      LISTEN_ADDR: `127.0.0.1:${o.port}`,
      SLOT_NAME: slotFor(o.db),
      LOG_LEVEL: 'warn',
      ...o.env,
    },
  })
}

/** SIGKILL and wait for the exit. */
export async function killHard(d: Daemon): Promise<void> {
  d.kill()
  await d.exited
}

/** SIGTERM and wait (graceful), SIGKILL after `ms`. */
export async function stopGracefully(d: Daemon, ms = 15_000): Promise<void> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return
  d.proc.kill('SIGTERM')
  const t = setTimeout(() => d.kill(), ms)
  await d.exited
  clearTimeout(t)
}
