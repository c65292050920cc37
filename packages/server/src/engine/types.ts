import type { PushResult, SnapshotReason } from '@synchro/protocol'
import type pg from 'pg'
import type { CompactionResult } from '../changelog/compaction.js'
import type { ConflictDecision, ConflictInput, ConflictResolver } from '../conflict/types.js'
import type { Registry } from '../registry/registry.js'
import type { Logger } from '../util/log.js'

export type { Logger }

/** A pino-compatible logger (only the methods we call). */

export type { CompactionProgress, CompactionResult } from '../changelog/compaction.js'

export interface CompactionOptions {
  /** Run compaction in the background every `intervalMs` (off when absent). */
  intervalMs?: number
  /** Clients whose last sync is older than this are deactivated (default 7 days). */
  staleThresholdMs?: number
  /** Rows deleted per statement (default 10 000). */
  batchSize?: number
}

/** Engine hooks; all optional. */
export interface EngineHooks {
  /** Inside the push transaction, after all records; throwing rolls back everything (HTTP 500). */
  onPushAccepted?(event: {
    userId: string
    clientId: string
    accepted: PushResult[]
    db: pg.PoolClient
  }): Promise<void> | void
  /** Informational: every update/resurrection that reached conflict resolution. */
  onConflict?(event: { input: ConflictInput; decision: ConflictDecision }): void
  /** After every answered push (metrics); `results` in request order. */
  onPushComplete?(event: { userId: string; clientId: string; results: PushResult[] }): void
  /** After every answered snapshot page (metrics). */
  onSnapshotPage?(event: { userId: string; clientId: string; records: number; final: boolean }): void
  /** After a pull page was answered. */
  onPullComplete?(event: {
    userId: string
    clientId: string
    checkpoint: number
    changes: number
    deletes: number
  }): void
  /** A pull answered snapshot_required. */
  onSnapshotRequired?(event: { userId: string; clientId: string; reason: SnapshotReason }): void
  /** Called for a deactivated (stale) client on pull/push; return false to reject it (HTTP 403). */
  onStaleClient?(event: { userId: string; clientId: string }): boolean | Promise<boolean>
  /** After each compaction run. */
  onCompaction?(result: CompactionResult): void
  /** Register from an app version below the minimum. */
  onSchemaIncompatible?(event: { userId: string; clientId: string; appVersion: string }): void
}

export interface EngineOptions {
  /** Pool for normal queries. Use a non-superuser role to make the generated RLS policies effective. */
  pool: pg.Pool
  registry: Registry
  /** Default: last-write-wins with `clockSkewToleranceMs`. */
  conflictResolver?: ConflictResolver
  clockSkewToleranceMs?: number
  hooks?: EngineHooks
  /** Minimum app version (`X-App-Version` header and register body). */
  minClientVersion?: string
  /** pino-compatible logger; default: errors to console.error, nothing else. */
  logger?: Logger
  compaction?: CompactionOptions
  /** Run the infrastructure migrations at start (default true). */
  migrate?: boolean
  /**
   * Deepest nesting accepted in a pushed `data` object (the object itself is level 1; default 64): deeper →
   * `rejected_terminal` `invalid_data`. Stored rows nesting deeper are left out of pull and snapshot pages (with a
   * `sync_rule_failures` row and a log line) instead of failing the page.
   */
  maxJsonDepth?: number
  /** Active clients one user may register (default 100); a new client_id beyond → 403. 0 = unbounded. */
  maxClientsPerUser?: number
  /**
   * Live change notifications (`GET /sync/events`). Each instance LISTENs (one dedicated connection) for the NOTIFY
   * the capture leader sends when it commits a changelog batch, and pokes the streams of the touched buckets at once.
   * The changelog head is also polled while anyone listens, as a safety net: every `fallbackPollIntervalMs`
   * (default 2 000) while LISTEN is up, every `pollIntervalMs` (default 100) with `listen: false` or while the
   * LISTEN connection is down (it reconnects with backoff and re-reads the head).
   */
  live?: { listen?: boolean; pollIntervalMs?: number; fallbackPollIntervalMs?: number }
}
