import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { SynchroClient } from '../src/client.js'
import type { SynchroClientConfig } from '../src/config.js'
import type { SqliteDriver } from '../src/driver.js'
import { openBetterSqlite3 } from '../src/drivers/better-sqlite3/index.js'
import { systemTimers, type Timers } from '../src/sync/retry.js'

const dirs: string[] = []

/** A fresh temp directory, removed by `cleanupTempDirs`. */
export function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'synchro-client-'))
  dirs.push(d)
  return d
}

export function cleanupTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
}

let n = 0
/** A driver over a new SQLite file. */
export function tempDriver(): Promise<SqliteDriver> {
  return openBetterSqlite3(path.join(tempDir(), `db-${n++}.sqlite`))
}

/** A client over a new SQLite file, syncing with `serverURL`; timer off unless given. */
export function makeClient(serverURL: string, over: Partial<SynchroClientConfig> = {}): SynchroClient {
  const dbPath = path.join(tempDir(), `client-${n++}.sqlite`)
  return new SynchroClient({
    dbPath,
    driverFactory: (p) => openBetterSqlite3(p),
    serverURL,
    userID: 'u1',
    clientID: `c-${n}`,
    appVersion: '1.0.0',
    syncInterval: 0,
    pushDebounce: 0.02,
    // The fake server has no event stream; live pokes are covered end to end.
    live: false,
    maxRetryAttempts: 2,
    random: () => 0,
    ...over,
  })
}

/** Polls `fn` until it returns true (no fixed sleeps in tests). */
export async function waitFor(
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await fn()) return
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

export function uuid(i: number): string {
  return `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`
}

/**
 * Starts `c` and waits for a sync cycle to have been attempted (what `start()` itself did before it returned as soon
 * as the local database was ready). Failures are swallowed, as they were: tests assert on the status.
 */
export async function startSynced(c: SynchroClient): Promise<void> {
  await c.start()
  await c.syncNow().catch(() => {})
}

/**
 * Real timers with a clock that stands still unless moved forward: records waiting for a push retry become due exactly
 * when the test says so (never because the machine was slow), without the test sleeping.
 */
export function manualClock(): { timers: Timers; advance: (ms: number) => void } {
  let now = Date.now()
  return {
    advance: (ms) => {
      now += ms
    },
    timers: { ...systemTimers, now: () => now },
  }
}
