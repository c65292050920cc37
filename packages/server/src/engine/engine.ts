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
import type { CompactionProgress, CompactionResult } from '../changelog/compaction.js'
import type { PokeFn } from '../changelog/notifier.js'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import type { SyncService } from '../core/service.js'
import type { RequestOptions } from '../limits/deadline.js'
import { LiveHub } from '../live/hub.js'
import { ensureTableIndexes } from '../migrations/indexes.js'
import { runMigrations } from '../migrations/migrations.js'
import { pull } from '../pull/pull.js'
import { push } from '../push/push.js'
import { register } from '../register/register.js'
import type { ResolvedTable } from '../registry/registry.js'
import { applyRlsPolicies, type RlsOptions, rlsStatements } from '../rls/rls.js'
import { tableMetaOf } from '../schema/contract.js'
import { findDdlWatch, foldDdlEpoch, warnNoDdlWatch } from '../schema/ddl-watch.js'
import { snapshotRecordCount } from '../snapshot/records.js'
import { snapshot } from '../snapshot/snapshot.js'
import { pullAttributes, pullResult, pushAttributes, pushResult, snapshotResult } from '../telemetry/attributes.js'
import { clientRebuild } from '../telemetry/events.js'
import { withSpan } from '../telemetry/tracing.js'
import { safeErrorFacts } from '../util/log.js'
import { guardPool } from '../util/pool.js'
import { nowRfc3339 } from '../util/time.js'
import { replicationProblems } from '../wal/setup.js'
import { Compactor } from './compactor.js'
import { engineContext } from './context.js'
import type { EngineOptions } from './types.js'

/** The sync engine: every endpoint as a method, no HTTP. Create it with `createEngine`. */
export class Engine implements SyncService {
  readonly ctx: EngineContext
  readonly #compactor: Compactor
  readonly #live: LiveHub

  constructor(options: EngineOptions) {
    this.ctx = engineContext(options)
    this.#compactor = new Compactor(this.ctx, options.compaction !== undefined)
    this.#live = new LiveHub(this.ctx, {
      listen: options.live?.listen ?? true,
      pollMs: options.live?.pollIntervalMs ?? 100,
      fallbackPollMs: options.live?.fallbackPollIntervalMs ?? 2_000,
      frames: options.live?.frames ?? 'shared',
    })
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
      records: snapshotRecordCount(res),
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
  runCompaction(opts: { onProgress?: (p: CompactionProgress) => void } = {}): Promise<CompactionResult> {
    return this.#compactor.run(opts.onProgress)
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
    this.#compactor.start()
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
    return this.#live.subscribe(userId, clientId, onChange, since, onEnd)
  }

  /**
   * The shared body of a live data frame: `buckets`' entries in (`prev`, `to`] rendered as `userId` may read them
   * (see live/frames.ts), or undefined when the range does not fit a frame (the stream pokes instead).
   */
  liveFrame(userId: string, buckets: readonly string[], prev: number, to: number): Promise<Uint8Array | undefined> {
    return this.#live.frame(userId, buckets, prev, to)
  }

  /** Ends every open live stream (`GET /sync/events`); clients reconnect elsewhere. Call when shutting down. */
  endLiveStreams(): void {
    this.#live.endAll()
  }

  /** Stops background work. The pool belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.#live.endAll()
    this.#compactor.stop()
  }
}

/** Validates the registry, runs migrations (unless `migrate: false`) and returns a ready engine. */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const engine = new Engine(options)
  guardPool(options.pool, engine.ctx.logger)
  if (options.migrate !== false) {
    warnNoDdlWatch(engine.ctx.logger, (await runMigrations(options.pool)).ddlWatch)
    // The (owner, id) indexes per-user snapshots need; a table created later gets its index on the next start.
    const indexes = await ensureTableIndexes(options.pool, engine.ctx.registry)
    if (indexes.created.length > 0) engine.ctx.logger.info({ indexes: indexes.created }, 'created table indexes')
    for (const f of indexes.failed) {
      engine.ctx.logger.warn({ index: f.name, error: f.error, sql: f.sql }, 'could not create a table index: run it')
    }
  }
  // Schema changes are noticed through the DDL watch when there is one to trust, else from the catalogs per request.
  const watch = await findDdlWatch(options.pool)
  engine.ctx.contracts.useDdlWatch(watch)
  if (watch) {
    // Counters of exited backends fold into one row (best effort: e.g. a role without DELETE on it just keeps them).
    await foldDdlEpoch(options.pool).catch((err: unknown) => {
      engine.ctx.logger.warn({ err: safeErrorFacts(err, false) }, 'could not fold the DDL counters of exited backends')
    })
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
