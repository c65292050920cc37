import { lastWriteWins } from '../conflict/lww.js'
import type { EngineContext } from '../core/context.js'
import { ConfigurationError } from '../errors.js'
import { DEFAULT_MAX_CLIENTS_PER_USER, DEFAULT_MAX_JSON_DEPTH } from '../limits/limits.js'
import { SchemaContractCache } from '../schema/contract.js'
import { DEFAULT_READ_AHEAD, ReadAheadCache } from '../snapshot/readahead.js'
import { defaultLogger } from '../util/log.js'
import { parseVersion } from '../util/semver.js'
import type { EngineOptions } from './types.js'

const DAY_MS = 24 * 60 * 60 * 1000

/** The engine's context from its options, with every default applied; misconfiguration throws (fails closed). */
export function engineContext(options: EngineOptions): EngineContext {
  if (!options?.pool) throw new ConfigurationError('createEngine: pool is required')
  if (!options.registry) throw new ConfigurationError('createEngine: registry is required')
  if (
    options.minClientVersion !== undefined &&
    options.minClientVersion !== '' &&
    !parseVersion(options.minClientVersion)
  ) {
    throw new ConfigurationError(`createEngine: invalid minClientVersion ${JSON.stringify(options.minClientVersion)}`)
  }
  const tables = options.registry.validate()
  return {
    pool: options.pool,
    registry: options.registry,
    tables,
    contracts: new SchemaContractCache(options.pool, tables),
    conflictResolver:
      options.conflictResolver ?? lastWriteWins({ clockSkewToleranceMs: options.clockSkewToleranceMs ?? 0 }),
    hooks: options.hooks ?? {},
    logger: options.logger ?? defaultLogger,
    minClientVersion: options.minClientVersion || undefined,
    limits: {
      maxJsonDepth: positiveInt(options.maxJsonDepth, DEFAULT_MAX_JSON_DEPTH, 'maxJsonDepth'),
      maxClientsPerUser: positiveInt(options.maxClientsPerUser, DEFAULT_MAX_CLIENTS_PER_USER, 'maxClientsPerUser', 0),
    },
    snapshotCache: new ReadAheadCache({
      rows: positiveInt(options.snapshotReadAhead?.rows, DEFAULT_READ_AHEAD.rows, 'snapshotReadAhead.rows', 0),
      maxBytes: positiveInt(
        options.snapshotReadAhead?.maxBytes,
        DEFAULT_READ_AHEAD.maxBytes,
        'snapshotReadAhead.maxBytes',
        0,
      ),
      ttlMs: positiveInt(options.snapshotReadAhead?.ttlMs, DEFAULT_READ_AHEAD.ttlMs, 'snapshotReadAhead.ttlMs', 0),
      parallel: flag(options.snapshotReadAhead?.parallel, DEFAULT_READ_AHEAD.parallel, 'snapshotReadAhead.parallel'),
    }),
    pullReadAhead: options.pullReadAhead === true,
    compaction: {
      intervalMs: options.compaction?.intervalMs,
      staleThresholdMs: options.compaction?.staleThresholdMs ?? 7 * DAY_MS,
      batchSize: options.compaction?.batchSize ?? 10_000,
    },
  }
}

function flag(value: boolean | undefined, fallback: boolean, name: string): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') {
    throw new ConfigurationError(`createEngine: ${name} must be true or false, got ${JSON.stringify(value)}`)
  }
  return value
}

function positiveInt(value: number | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigurationError(`createEngine: ${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`)
  }
  return value
}
