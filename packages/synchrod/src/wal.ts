import type { Logger, Registry } from '@synchro/server'
import * as server from '@synchro/server'
import type pg from 'pg'
import { StartupError } from './database.js'

// The WAL consumer API of @synchro/server (packages/server/src/wal). Looked up at run time so the daemon builds and
// its non-WAL commands work while that export lands; switch to static imports once `startWalConsumer`,
// `ensurePublication`, `ensureSlot` and `leaderLockKey` are exported from the package index.

export interface WalConsumerStatus {
  leader: boolean
  running: boolean
  lastLsn: string | null
  lagBytes: number | null
  lastError: string | null
}

export interface WalConsumer {
  stop(): Promise<void>
  status(): WalConsumerStatus
}

export interface WalConsumerOptions {
  pool: pg.Pool
  registry: Registry
  replicationUrl: string
  slotName?: string
  publicationName?: string
  statusIntervalMs?: number
  leaderRetryMs?: number
  logger?: Logger
}

interface WalApi {
  startWalConsumer(options: WalConsumerOptions): WalConsumer
  ensurePublication(db: pg.Pool, registry: Registry, publicationName: string): Promise<void>
  ensureSlot(db: pg.Pool, slotName: string): Promise<{ created: boolean }>
  leaderLockKey?(slotName: string): string
}

const api = server as unknown as Partial<WalApi>

/** True once @synchro/server exports the WAL consumer. */
export function walAvailable(): boolean {
  return typeof api.startWalConsumer === 'function'
}

function need<K extends keyof WalApi>(name: K): NonNullable<WalApi[K]> {
  const fn = api[name]
  if (typeof fn !== 'function') {
    throw new StartupError(`@synchro/server does not export ${name}: this build has no WAL consumer`)
  }
  return fn as NonNullable<WalApi[K]>
}

export const startWalConsumer = (options: WalConsumerOptions): WalConsumer => need('startWalConsumer')(options)
export const ensurePublication = (db: pg.Pool, registry: Registry, name: string): Promise<void> =>
  need('ensurePublication')(db, registry, name)
export const ensureSlot = (db: pg.Pool, slotName: string): Promise<{ created: boolean }> =>
  need('ensureSlot')(db, slotName)
/** The consumer's leader advisory-lock key for a slot, when the server exports it. */
export const leaderLockKey = (slotName: string): string | undefined => api.leaderLockKey?.(slotName)
