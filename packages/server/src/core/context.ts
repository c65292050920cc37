import type pg from 'pg'
import type { ConflictResolver } from '../conflict/types.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { SchemaContractCache } from '../schema/contract.js'
import type { ReadAheadCache } from '../snapshot/readahead.js'
import type { EngineHooks } from './hooks.js'
import type { CompactionOptions, Logger } from './types.js'

/**
 * What the endpoint implementations (register, pull, push, snapshot, events, compaction) share. Built once by the
 * engine (the composition root); everything below it receives it instead of importing the engine.
 */
export interface EngineContext {
  pool: pg.Pool
  registry: Registry
  tables: readonly ResolvedTable[]
  contracts: SchemaContractCache
  conflictResolver: ConflictResolver
  hooks: EngineHooks
  logger: Logger
  minClientVersion: string | undefined
  compaction: Required<Omit<CompactionOptions, 'intervalMs'>> & { intervalMs: number | undefined }
  limits: { maxJsonDepth: number; maxClientsPerUser: number }
  /** Snapshot rows read ahead of the page that read them, for the same client's next page (snapshot/). */
  snapshotCache: ReadAheadCache
  /** Whether pull pages are read ahead (EngineOptions.pullReadAhead; pull/ahead.ts). */
  pullReadAhead: boolean
}
