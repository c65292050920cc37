/**
 * Client configuration (PROTOCOL.md §4.5), validated once at construction.
 */
import type { DriverFactory, SqliteDriver } from './driver.js'
import { ConfigError } from './errors.js'
import { systemTimers, type Timers } from './sync/retry.js'
import type { TracerLike } from './sync/tracing.js'
import type { FetchLike } from './sync/transport.js'

export interface SynchroClientConfig {
  /** An open driver. Either this or `dbPath` + `driverFactory`. */
  driver?: SqliteDriver
  /** Database file path, opened with `driverFactory` on first use. */
  dbPath?: string
  driverFactory?: DriverFactory
  /** Base URL of the sync server, e.g. `https://api.example.com` (routes are `/sync/...`). */
  serverURL: string
  /** Returns a bearer token; called before every request. */
  authProvider?: () => Promise<string> | string
  /** Dev header mode (`X-User-ID`), only when there is no `authProvider`. */
  userID?: string
  /** Stable id of this installation (unique per user). */
  clientID: string
  /** Reported at register; defaults to the runtime's platform name. */
  platform?: string
  /** Sent as `X-App-Version` and at register. */
  appVersion: string
  /** Seconds between timer-driven sync cycles (default 30; 0 disables the timer). */
  syncInterval?: number
  /**
   * Burst window for pushes, in seconds (default 0.025). A local write made when no sync cycle started within this
   * window is pushed at once; writes closer together than that are coalesced into one push, sent at most twice this
   * long after the first of them.
   */
  pushDebounce?: number
  /**
   * Listen to the server's live event stream (`GET /sync/events`) and sync as soon as it reports changes for this
   * client (default true). Off, or against a server without the endpoint, changes arrive on the timer.
   */
  live?: boolean
  /** Retries of a failed cycle before giving up until the next tick (default 5). */
  maxRetryAttempts?: number
  /**
   * Pushes of one record that the server answers `rejected_retryable` before the record is quarantined (moved to
   * `rejections()`), 1–100 (default 8). Between attempts the record waits 1, 2, 4 … s, capped at 60 s.
   */
  maxPushAttempts?: number
  /** Page sizes, 1–1000 (default 100). */
  pullPageSize?: number
  pushBatchSize?: number
  snapshotPageSize?: number
  /** Seconds before a request is abandoned as a network failure (default 60; 0 = never). */
  requestTimeout?: number
  /** Injectable `fetch` (tests, custom agents). Defaults to the global one. */
  fetch?: FetchLike
  /**
   * OpenTelemetry tracer (e.g. `trace.getTracer('my-app')`): each request gets a client span and sends its W3C
   * `traceparent`, so the server's spans join the app's trace. Off when absent.
   */
  tracer?: TracerLike
  /** Injectable clock and timers (tests). */
  timers?: Timers
  /** Injectable random source in [0, 1) for backoff jitter (tests). */
  random?: () => number
}

export interface ResolvedConfig {
  openDriver: () => Promise<SqliteDriver>
  dbPath: string | null
  serverURL: string
  authProvider?: () => Promise<string> | string
  userID?: string
  clientID: string
  platform: string
  appVersion: string
  syncInterval: number
  pushDebounce: number
  live: boolean
  maxRetryAttempts: number
  maxPushAttempts: number
  pullPageSize: number
  pushBatchSize: number
  snapshotPageSize: number
  requestTimeout: number
  fetch: FetchLike
  tracer?: TracerLike
  timers: Timers
  random: () => number
}

function defaultPlatform(): string {
  const p = (globalThis as { process?: { platform?: string } }).process?.platform
  return typeof p === 'string' ? p : 'unknown'
}

function number(name: string, value: unknown, def: number, check: (n: number) => boolean, rule: string): number {
  if (value === undefined) return def
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) {
    throw new ConfigError(name, `must be ${rule} (got ${JSON.stringify(value)})`)
  }
  return value
}

function bool(name: string, value: unknown, def: boolean): boolean {
  if (value === undefined) return def
  if (typeof value !== 'boolean') throw new ConfigError(name, `must be a boolean (got ${JSON.stringify(value)})`)
  return value
}

const pageSize = (n: number) => Number.isInteger(n) && n >= 1 && n <= 1000

/** Validates `config` and fills defaults; throws `ConfigError` naming the first bad field. */
export function resolveConfig(config: SynchroClientConfig): ResolvedConfig {
  if (config === null || typeof config !== 'object') throw new ConfigError('config', 'must be an object')
  const { driver, dbPath, driverFactory } = config
  let openDriver: () => Promise<SqliteDriver>
  if (driver) {
    if (dbPath !== undefined) throw new ConfigError('driver', 'give either driver or dbPath, not both')
    openDriver = async () => driver
  } else {
    if (typeof dbPath !== 'string' || dbPath === '') throw new ConfigError('dbPath', 'required when no driver is given')
    if (typeof driverFactory !== 'function') {
      throw new ConfigError('driverFactory', 'required with dbPath (e.g. betterSqlite3Factory)')
    }
    openDriver = async () => driverFactory(dbPath)
  }
  if (typeof config.serverURL !== 'string' || !/^https?:\/\/[^/]/.test(config.serverURL)) {
    throw new ConfigError('serverURL', 'must be an http(s) URL')
  }
  if (config.authProvider !== undefined && typeof config.authProvider !== 'function') {
    throw new ConfigError('authProvider', 'must be a function returning a token')
  }
  if (config.authProvider === undefined) {
    if (typeof config.userID !== 'string' || config.userID === '') {
      throw new ConfigError('authProvider', 'required (or userID for dev header mode)')
    }
  } else if (config.userID !== undefined) {
    throw new ConfigError('userID', 'only allowed without authProvider (dev header mode)')
  }
  if (typeof config.clientID !== 'string' || config.clientID === '') {
    throw new ConfigError('clientID', 'must be a non-empty string')
  }
  if (typeof config.appVersion !== 'string') throw new ConfigError('appVersion', 'must be a string')
  if (config.platform !== undefined && typeof config.platform !== 'string') {
    throw new ConfigError('platform', 'must be a string')
  }
  if (config.tracer !== undefined && typeof config.tracer?.startSpan !== 'function') {
    throw new ConfigError('tracer', 'must have a startSpan method (an OpenTelemetry Tracer)')
  }
  // Bound: browsers throw "Illegal invocation" when fetch is called as a method of another object.
  const fetchImpl =
    config.fetch ??
    (typeof globalThis.fetch === 'function' ? (globalThis.fetch.bind(globalThis) as FetchLike) : undefined)
  if (typeof fetchImpl !== 'function') throw new ConfigError('fetch', 'no global fetch; pass one')
  return {
    openDriver,
    dbPath: dbPath ?? null,
    serverURL: config.serverURL,
    ...(config.authProvider ? { authProvider: config.authProvider } : {}),
    ...(config.userID !== undefined ? { userID: config.userID } : {}),
    clientID: config.clientID,
    platform: config.platform ?? defaultPlatform(),
    appVersion: config.appVersion,
    syncInterval: number('syncInterval', config.syncInterval, 30, (n) => n >= 0, 'a number of seconds ≥ 0'),
    pushDebounce: number('pushDebounce', config.pushDebounce, 0.025, (n) => n >= 0, 'a number of seconds ≥ 0'),
    live: bool('live', config.live, true),
    maxRetryAttempts: number(
      'maxRetryAttempts',
      config.maxRetryAttempts,
      5,
      (n) => Number.isInteger(n) && n >= 0 && n <= 100,
      'an integer 0–100',
    ),
    maxPushAttempts: number(
      'maxPushAttempts',
      config.maxPushAttempts,
      8,
      (n) => Number.isInteger(n) && n >= 1 && n <= 100,
      'an integer 1–100',
    ),
    pullPageSize: number('pullPageSize', config.pullPageSize, 100, pageSize, 'an integer 1–1000'),
    pushBatchSize: number('pushBatchSize', config.pushBatchSize, 100, pageSize, 'an integer 1–1000'),
    snapshotPageSize: number('snapshotPageSize', config.snapshotPageSize, 100, pageSize, 'an integer 1–1000'),
    requestTimeout: number('requestTimeout', config.requestTimeout, 60, (n) => n >= 0, 'a number of seconds ≥ 0'),
    fetch: fetchImpl,
    ...(config.tracer ? { tracer: config.tracer } : {}),
    timers: config.timers ?? systemTimers,
    random: config.random ?? Math.random,
  }
}
