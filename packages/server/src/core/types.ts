export type { Logger } from '../util/log.js'

export interface CompactionOptions {
  /** Run compaction in the background every `intervalMs` (off when absent). */
  intervalMs?: number
  /** Clients whose last sync is older than this are deactivated (default 7 days). */
  staleThresholdMs?: number
  /** Rows deleted per statement (default 10 000). */
  batchSize?: number
}

/** How live data frames are rendered: once for everyone where the registry allows it, per user, or not at all. */
export type LiveFrames = 'shared' | 'per-user' | 'off'
