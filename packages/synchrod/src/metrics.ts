import { ROUTES } from '@synchro/protocol'
import { CLIENT_CLOSED_REQUEST, type Engine, type EngineHooks, type WalConsumer } from '@synchro/server'
import type pg from 'pg'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { registerConsumerGauges, registerDatabaseGauges } from './metrics-gauges.js'
import { instrumentEngine } from './metrics-instrument.js'
import { RequestStats } from './status-page/request-stats.js'

/** Route label values are a closed set (unknown paths collapse to "other") so label cardinality stays bounded. */
export const KNOWN_ROUTES: ReadonlySet<string> = new Set([
  ...Object.values(ROUTES).map((r) => r.path),
  '/healthz',
  '/metrics',
  '/status',
  '/status.json',
])

const METHODS = new Set(['GET', 'POST', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'DELETE'])

export function routeLabel(pathname: string): string {
  return KNOWN_ROUTES.has(pathname) ? pathname : 'other'
}

/** Prometheus metrics of one daemon, in their own registry (never prom-client's global one). */
export class Metrics {
  readonly registry = new Registry()
  readonly requests: Counter<'route' | 'method' | 'status'>
  readonly clientAborts: Counter<'route'>
  readonly latency: Histogram<'route' | 'method' | 'status'>
  readonly pushRecords: Counter<'status' | 'reason'>
  readonly conflicts: Counter<'winner'>
  readonly pullRecords: Counter<'kind'>
  readonly snapshotRecords: Counter
  readonly snapshotRequired: Counter<'reason'>
  readonly compactionRuns: Counter
  readonly compactionDeleted: Counter
  /** Recent per-route rates and latency for the status page. */
  readonly stats = new RequestStats()
  /** Open live event streams (`GET /sync/events`) of this process. */
  liveStreams = 0

  constructor(opts: { pool: pg.Pool; slotName: string; consumer: () => WalConsumer | undefined }) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.requests = new Counter({
      name: 'synchro_http_requests_total',
      help: 'HTTP requests answered, by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    })
    this.clientAborts = new Counter({
      name: 'synchro_http_client_aborts_total',
      help: 'Requests whose client disconnected before its body was complete (no answer sent; not in requests_total).',
      labelNames: ['route'],
      registers,
    })
    this.latency = new Histogram({
      name: 'synchro_http_request_duration_seconds',
      help: 'HTTP request latency, by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    this.pushRecords = new Counter({
      name: 'synchro_push_records_total',
      help: 'Pushed records by outcome: status (applied, conflict, rejected_terminal, rejected_retryable) and reason code.',
      labelNames: ['status', 'reason'],
      registers,
    })
    this.conflicts = new Counter({
      name: 'synchro_conflicts_total',
      help: 'Updates that reached conflict resolution, by winner (client or server).',
      labelNames: ['winner'],
      registers,
    })
    this.pullRecords = new Counter({
      name: 'synchro_pull_records_total',
      help: 'Records returned by pull, by kind (change or delete).',
      labelNames: ['kind'],
      registers,
    })
    this.snapshotRecords = new Counter({
      name: 'synchro_snapshot_records_total',
      help: 'Records returned by snapshot pages.',
      registers,
    })
    this.snapshotRequired = new Counter({
      name: 'synchro_snapshot_required_total',
      help: 'Pulls answered with snapshot_required, by reason.',
      labelNames: ['reason'],
      registers,
    })
    this.compactionRuns = new Counter({ name: 'synchro_compaction_runs_total', help: 'Compaction runs.', registers })
    this.compactionDeleted = new Counter({
      name: 'synchro_compaction_deleted_rows_total',
      help: 'Changelog rows deleted by compaction.',
      registers,
    })

    registerDatabaseGauges(registers, opts.pool, opts.slotName)
    const live = this
    new Gauge({
      name: 'synchro_live_streams',
      help: 'Open live event streams (GET /sync/events) on this instance.',
      registers,
      collect() {
        this.set(live.liveStreams)
      },
    })
    registerConsumerGauges(registers, opts.consumer)
  }

  /** Engine hooks that count conflicts, snapshot-required answers and compaction results. */
  hooks(): EngineHooks {
    return {
      onConflict: ({ decision }) => this.conflicts.inc({ winner: decision.winner }),
      onSnapshotRequired: ({ reason }) => this.snapshotRequired.inc({ reason }),
      onCompaction: (result) => {
        this.compactionRuns.inc()
        this.compactionDeleted.inc(result.deletedEntries)
      },
    }
  }

  /**
   * Counts records per push outcome and per pull/snapshot page by wrapping the engine's methods (see
   * instrumentEngine).
   */
  instrument(engine: Engine): void {
    instrumentEngine(engine, this)
  }

  /** For the sync handler's onResponse. */
  observe(info: { route: string; method: string; status: number; durationMs: number }): void {
    if (info.status === CLIENT_CLOSED_REQUEST) {
      this.clientAborts.inc({ route: routeLabel(info.route) })
      return
    }
    const method = METHODS.has(info.method) ? info.method : 'other'
    const labels = { route: routeLabel(info.route), method, status: String(info.status) }
    this.requests.inc(labels)
    this.latency.observe(labels, info.durationMs / 1000)
    this.stats.record(labels.route, info.durationMs, info.status)
  }
}
