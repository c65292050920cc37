import type {
  PullRequest,
  PullResponse,
  PushRequest,
  PushResponse,
  RegisterRequest,
  RegisterResponse,
  SchemaResponse,
  SnapshotRequest,
  SnapshotResponse,
  TablesResponse,
} from '@synchro/protocol'
import { type CompactionProgress, type CompactionResult, runCompaction } from '../changelog/compaction.js'
import { ChangelogNotifier, type NotifierOptions, type PokeFn } from '../changelog/notifier.js'
import { lastWriteWins } from '../conflict/lww.js'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import type { SyncService } from '../core/service.js'
import { ConfigurationError } from '../errors.js'
import type { RequestOptions } from '../limits/deadline.js'
import { DEFAULT_MAX_CLIENTS_PER_USER, DEFAULT_MAX_JSON_DEPTH } from '../limits/limits.js'
import { FrameRenderer } from '../live/frames.js'
import { ensureTableIndexes } from '../migrations/indexes.js'
import { runMigrations } from '../migrations/migrations.js'
import { pull } from '../pull/pull.js'
import { push } from '../push/push.js'
import { register } from '../register/register.js'
import type { ResolvedTable } from '../registry/registry.js'
import { inRequest } from '../request/open.js'
import { applyRlsPolicies, type RlsOptions, rlsStatements } from '../rls/rls.js'
import { SchemaContractCache, tableMetaOf } from '../schema/contract.js'
import { snapshot } from '../snapshot/snapshot.js'
import {
  compactionResult,
  pullAttributes,
  pullResult,
  pushAttributes,
  pushResult,
  snapshotResult,
} from '../telemetry/attributes.js'
import { clientRebuild } from '../telemetry/events.js'
import { withSpan } from '../telemetry/tracing.js'
import { defaultLogger, safeErrorFacts } from '../util/log.js'
import { guardPool } from '../util/pool.js'
import { parseVersion } from '../util/semver.js'
import { nowRfc3339 } from '../util/time.js'
import { replicationProblems } from '../wal/setup.js'
import type { EngineOptions } from './types.js'

const DAY_MS = 24 * 60 * 60 * 1000

/** The sync engine: every endpoint as a method, no HTTP. Create it with `createEngine`. */
export class Engine implements SyncService {
  readonly ctx: EngineContext
  #compactionTimer: NodeJS.Timeout | undefined
  #compactionConfigured: boolean
  #notifier: ChangelogNotifier | undefined
  #frames: FrameRenderer | undefined
  readonly #live: NotifierOptions

  constructor(options: EngineOptions) {
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
    this.#compactionConfigured = options.compaction !== undefined
    this.#live = {
      listen: options.live?.listen ?? true,
      pollMs: options.live?.pollIntervalMs ?? 100,
      fallbackPollMs: options.live?.fallbackPollIntervalMs ?? 2_000,
    }
    this.ctx = {
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
      compaction: {
        intervalMs: options.compaction?.intervalMs,
        staleThresholdMs: options.compaction?.staleThresholdMs ?? 7 * DAY_MS,
        batchSize: options.compaction?.batchSize ?? 10_000,
      },
    }
  }

  /** Registered tables in registration order. */
  get tables(): readonly ResolvedTable[] {
    return this.ctx.tables
  }

  /** Minimum client version, when configured. */
  get minClientVersion(): string | undefined {
    return this.ctx.minClientVersion
  }

  /** POST /sync/register (§3 B). */
  register(userId: string, req: RegisterRequest, opts: RequestOptions = {}): Promise<RegisterResponse> {
    return register(this.ctx, userId, req, opts.deadline)
  }

  /** POST /sync/pull (§3 D). */
  async pull(userId: string, req: PullRequest, opts: RequestOptions = {}): Promise<PullResponse> {
    const res = await withSpan(
      'synchro.pull',
      pullAttributes(req),
      () => pull(this.ctx, userId, req, opts.deadline),
      pullResult,
    )
    const rebuild = { userId, clientId: req.client_id, checkpoint: req.checkpoint ?? 0, reason: res.snapshot_reason }
    if (res.snapshot_required) clientRebuild(this.ctx.logger, rebuild)
    return res
  }

  /** POST /sync/push (§3 F–H). */
  async push(userId: string, req: PushRequest, opts: RequestOptions = {}): Promise<PushResponse> {
    const res = await withSpan(
      'synchro.push',
      pushAttributes(req),
      () => push(this.ctx, userId, req, opts.deadline),
      pushResult,
    )
    emitHook(this.ctx, 'onPushComplete', () => ({
      userId,
      clientId: req.client_id,
      results: [...res.accepted, ...res.rejected],
    }))
    return res
  }

  /** POST /sync/snapshot (§3 E). */
  async snapshot(userId: string, req: SnapshotRequest, opts: RequestOptions = {}): Promise<SnapshotResponse> {
    const res = await withSpan(
      'synchro.snapshot',
      { 'synchro.client_id': req.client_id },
      () => snapshot(this.ctx, userId, req, opts.deadline),
      snapshotResult,
    )
    emitHook(this.ctx, 'onSnapshotPage', () => ({
      userId,
      clientId: req.client_id,
      records: res.records.length,
      final: !res.has_more,
    }))
    return res
  }

  /** GET /sync/tables. */
  async tablesMeta(): Promise<TablesResponse> {
    const contract = await this.ctx.contracts.get()
    const tables = [...this.ctx.tables]
      .sort((a, b) => (a.tableName < b.tableName ? -1 : a.tableName > b.tableName ? 1 : 0))
      .map(tableMetaOf)
    return { tables, server_time: nowRfc3339(), schema_version: contract.version, schema_hash: contract.hash }
  }

  /** GET /sync/schema. */
  async schema(): Promise<SchemaResponse> {
    const c = await this.ctx.contracts.get()
    return { schema_version: c.version, schema_hash: c.hash, server_time: nowRfc3339(), tables: c.tables }
  }

  /**
   * One compaction run (§3 I); error when the engine was created without compaction options. `onProgress` (for
   * terminals) costs one count of the entries to delete up front.
   */
  async runCompaction(opts: { onProgress?: (p: CompactionProgress) => void } = {}): Promise<CompactionResult> {
    if (!this.#compactionConfigured) throw new ConfigurationError('compaction is not configured')
    const result = await withSpan(
      'synchro.compaction',
      {},
      () => runCompaction(this.ctx, opts.onProgress),
      compactionResult,
    )
    emitHook(this.ctx, 'onCompaction', () => result)
    return result
  }

  /** The RLS statements of §2.6 for the registry (idempotent form). */
  rlsStatements(opts?: RlsOptions): string[] {
    return rlsStatements(this.ctx.registry, opts)
  }

  /** Applies the RLS policies (needs a role that owns the tables). Re-running is safe. */
  applyRls(opts?: RlsOptions): Promise<void> {
    return applyRlsPolicies(this.ctx.pool, this.ctx.registry, opts)
  }

  /** Starts background compaction when `compaction.intervalMs` is set. */
  startBackgroundTasks(): void {
    const every = this.ctx.compaction.intervalMs
    if (!every || this.#compactionTimer) return
    this.#compactionTimer = setInterval(() => {
      this.runCompaction().catch((err: unknown) =>
        this.ctx.logger.error({ err: safeErrorFacts(err) }, 'background compaction failed'),
      )
    }, every)
    this.#compactionTimer.unref()
  }

  /**
   * Live notifications for one registered client: `onChange(seq)` fires when one of its subscribed buckets gets new
   * changelog entries (a hint to pull now); with `since` (its checkpoint) it is also poked once if entries already
   * landed past it. 404 (ClientNotRegisteredError) when the client never registered.
   * Returns the unsubscribe function.
   */
  async subscribeChanges(
    userId: string,
    clientId: string,
    onChange: PokeFn,
    since?: number,
    onEnd?: () => void,
  ): Promise<() => void> {
    // The client row (404 / stale → 403) in one statement, no transaction: nothing is written.
    const opening = { access: 'read', schema: 'none', begin: null } as const
    const client = await inRequest(this.ctx, userId, { client_id: clientId }, opening, async (tx) => tx.client)
    this.#notifier ??= new ChangelogNotifier(this.ctx.pool, this.#live, this.ctx.logger)
    return this.#notifier.subscribe(client.bucketSubs, onChange, since, onEnd)
  }

  /**
   * The shared body of a live data frame: `buckets`' entries in (`prev`, `to`] rendered as `userId` may read them
   * (see live/frames.ts), or undefined when the range does not fit a frame (the stream pokes instead).
   */
  liveFrame(userId: string, buckets: readonly string[], prev: number, to: number): Promise<Uint8Array | undefined> {
    this.#frames ??= new FrameRenderer(this.ctx)
    return this.#frames.body(userId, buckets, prev, to)
  }

  /** Ends every open live stream (`GET /sync/events`); clients reconnect elsewhere. Call when shutting down. */
  endLiveStreams(): void {
    this.#notifier?.endAll()
  }

  /** Stops background work. The pool belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.#notifier?.endAll()
    if (this.#compactionTimer) clearInterval(this.#compactionTimer)
    this.#compactionTimer = undefined
  }
}

/** An integer option ≥ `min`, or its default when absent; anything else is a configuration error. */
function positiveInt(value: number | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigurationError(`createEngine: ${name} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`)
  }
  return value
}

/** Validates the registry, runs migrations (unless `migrate: false`) and returns a ready engine. */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const engine = new Engine(options)
  guardPool(options.pool, engine.ctx.logger)
  if (options.migrate !== false) {
    await runMigrations(options.pool)
    // The (owner, id) indexes per-user snapshots need; a table created later gets its index on the next start.
    const indexes = await ensureTableIndexes(options.pool, engine.ctx.registry)
    if (indexes.created.length > 0) engine.ctx.logger.info({ indexes: indexes.created }, 'created table indexes')
    for (const f of indexes.failed) {
      engine.ctx.logger.warn({ index: f.name, error: f.error, sql: f.sql }, 'could not create a table index: run it')
    }
  }
  // Without logical replication pulls silently return nothing: say so loudly (the WAL consumer, wherever it runs,
  // refuses to start for the same reason). Not fatal: the engine itself can serve.
  const problems = await replicationProblems(options.pool, { role: false }).catch(() => [])
  if (problems.length > 0) {
    engine.ctx.logger.error({ problems }, `database not ready for change capture: ${problems.join('; ')}`)
  }
  engine.startBackgroundTasks()
  return engine
}
