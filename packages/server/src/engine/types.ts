import type pg from 'pg'
import type { ConflictResolver } from '../conflict/types.js'
import type { EngineHooks } from '../core/hooks.js'
import type { CompactionOptions, LiveFrames } from '../core/types.js'
import type { Registry } from '../registry/registry.js'
import type { Logger } from '../util/log.js'

export type { LiveFrames, Logger }

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
  /** Run the infrastructure migrations and create the registered tables' (owner, id) indexes at start (default true). */
  migrate?: boolean
  /**
   * Deepest nesting accepted in a pushed `data` object (the object itself is level 1; default 64): deeper →
   * `rejected_terminal` `invalid_data`. Stored rows nesting deeper are left out of pull and snapshot pages (with a
   * `sync_rule_failures` row and a log line) instead of failing the page.
   */
  maxJsonDepth?: number
  /**
   * Snapshot read-ahead: the statement that fills a snapshot page also reads the next `rows` rows of that table
   * (default 9 000; 0 = off) and keeps them in this instance's memory for the same user's and client's next page
   * (which still checks the client and the schema first), for at most `ttlMs` (default 30 000). All clients' rows
   * together stay within `maxBytes` (default 64 MiB, text counted at 2 bytes a character); above half of it pages
   * read only their own rows. With `parallel` (default true) the rows after those are read at the same time on a
   * second pool connection (two backends render at once), unless a request waits for a connection.
   */
  snapshotReadAhead?: { rows?: number; maxBytes?: number; ttlMs?: number; parallel?: boolean }
  /**
   * Pull read-ahead (default false): after a page with more, the next page of the same client is read in the
   * background and served when that client asks for exactly it (pull/ahead.ts; kept `snapshotReadAhead.ttlMs`, all
   * pages within a quarter of its `maxBytes`). It hides the server's time behind the client's: worth it for clients
   * far from the server or slow to apply a page. A page served this way costs the database more than a page read on
   * request (a check statement and a commit of its own), and a client that asks back to back gains nothing —
   * measured 0.91–0.99× the throughput without it; with a 5 ms pause per page, 1.16–1.26× (docs/performance.md).
   */
  pullReadAhead?: boolean
  /** Active clients one user may register (default 100); a new client_id beyond → 403. 0 = unbounded. */
  maxClientsPerUser?: number
  /**
   * Live change notifications (`GET /sync/events`). Each instance LISTENs (one dedicated connection) for the NOTIFY
   * the capture leader sends when it commits a changelog batch, and pokes the streams of the touched buckets at once.
   * The changelog head is also polled while anyone listens, as a safety net: every `fallbackPollIntervalMs`
   * (default 2 000) while LISTEN is up, every `pollIntervalMs` (default 100) with `listen: false` or while the
   * LISTEN connection is down (it reconnects with backoff and re-reads the head).
   *
   * `frames` (docs/live-frames.md): `shared` (default) renders a range once for every stream when all its rows come
   * from tables without a registry read predicate; `per-user` renders every user's frame on its own — for apps whose
   * own RLS policies make such tables user-dependent; `off` sends pokes only (clients pull).
   */
  live?: {
    listen?: boolean
    pollIntervalMs?: number
    fallbackPollIntervalMs?: number
    frames?: LiveFrames
  }
}
