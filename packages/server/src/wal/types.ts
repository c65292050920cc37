import type pg from 'pg'
import type { Registry } from '../registry/registry.js'
import type { Logger } from '../util/log.js'

/** Options of {@link startWalConsumer}. */
export interface WalConsumerOptions {
  /** Normal connections: changelog writes, setup, catalog reads. */
  pool: pg.Pool
  registry: Registry
  /** Connection string for the replication connection (and the leader-lock session) to the same database. */
  replicationUrl: string
  /** Default `synchro_slot`. */
  slotName?: string
  /** Default `synchro_pub`. */
  publicationName?: string
  /** Global SQL bucket function for tables without their own `bucketFunction`. */
  bucketFunction?: string
  /** Standby status interval; default 10 000 ms (must stay below wal_sender_timeout / 2). */
  statusIntervalMs?: number
  /** How often a non-leader retries the leader lock; default 1 000 ms. */
  leaderRetryMs?: number
  /**
   * Most row changes per changelog transaction (whole source transactions are never split); default 10 000. Also the
   * keys per chunk of the edge backfill (rows written before the capture started are given their bucket edges).
   */
  batchMaxEvents?: number
  /**
   * Compute the next batch (edge reads, bucket resolution, changelog rows) on a second pool connection while the
   * current one is written; default true. false: every batch is computed inside its own transaction, serially.
   */
  pipelining?: boolean
  /**
   * Receive transactions bigger than the walsender's `logical_decoding_work_mem` while they run (pgoutput protocol
   * 2 `streaming`, PostgreSQL ≥ 14) and keep them in a spill file until they commit, so memory stays flat whatever
   * their size; default true (ignored before PostgreSQL 14, where a transaction arrives whole at its commit).
   */
  streaming?: boolean
  /** Directory for spill files of streamed transactions (a private subdirectory per session); default the OS temp. */
  spillDir?: string
  /**
   * The walsender's `logical_decoding_work_mem` for this consumer's stream (e.g. `64MB`): how much of a running
   * transaction the server holds before it streams it to us. Default: the server's setting.
   */
  logicalDecodingWorkMem?: string
  /** pino-compatible logger; default: errors (e.g. a database not set up for logical replication) to console.error. */
  logger?: Logger
  /** Log `synchro.capture.behind` when a batch's newest change committed longer ago (ms; default 10 000, 0 = off). */
  lagWarnMs?: number
  /** Called with every error the consumer recovers from or stops on. */
  onError?: (err: Error) => void
}

export interface WalConsumerStatus {
  /** This process holds the leader lock. */
  leader: boolean
  /** A replication stream is open and being consumed. */
  running: boolean
  /** Durable (stored and acknowledged) position, `X/Y`. */
  lastLsn: string | null
  /** Server send position minus the durable position, in bytes. */
  lagBytes: number | null
  lastError: string | null
  /**
   * Registered tables whose rows the capture never saw written (written before the slot existed, or before the
   * table was registered) are still being given their bucket edges; empty once done (or when not the leader).
   * Until then a TRUNCATE of such a table does not remove those rows from devices.
   */
  backfilling: string[]
}

export interface WalConsumer {
  /** Acknowledges the durable LSN, releases the leader lock and closes the consumer's connections. */
  stop(): Promise<void>
  status(): WalConsumerStatus
  /** Resolves once everything up to `lsn` (`X/Y` or 64-bit) is durable; rejects after `timeoutMs` (default 30 s). */
  waitForLsn(lsn: string | bigint, timeoutMs?: number): Promise<void>
}
