/** A pino-compatible logger (only the methods we call). */
export interface Logger {
  debug(obj: object, msg?: string): void
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export interface CompactionOptions {
  /** Run compaction in the background every `intervalMs` (off when absent). */
  intervalMs?: number
  /** Clients whose last sync is older than this are deactivated (default 7 days). */
  staleThresholdMs?: number
  /** Rows deleted per statement (default 10 000). */
  batchSize?: number
}
