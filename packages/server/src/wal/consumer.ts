import { createHash } from 'node:crypto'
import pg from 'pg'
import { ColumnCatalog } from '../buckets/catalog.js'
import { BucketResolver, type TextRow } from '../buckets/resolver.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { CaptureLag } from '../telemetry/events.js'
import { tracedApply } from '../telemetry/tracing.js'
import { defaultLogger, type Logger, safeErrorFacts, safeErrorMessage } from '../util/log.js'
import { guardPool } from '../util/pool.js'
import { BatchApplier, type Change, type PreparedBatch, type RowChange, type WalTransaction } from './apply.js'
import {
  WalConfigurationError,
  WalConnectionError,
  WalError,
  WalLeadershipLostError,
  WalSlotRecreatedError,
} from './errors.js'
import { bigintToLsn, lsnToBigint, maxLsn } from './lsn.js'
import { decodePgoutput, type RelationMessage, type TupleValue, UNCHANGED } from './pgoutput.js'
import {
  assertLogicalWal,
  assertSlotName,
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  tableOids,
} from './setup.js'
import { ReplicationStream } from './stream.js'

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
  /** Most row changes per changelog transaction (whole source transactions are never split); default 10 000. */
  batchMaxEvents?: number
  /**
   * Compute the next batch (edge reads, bucket resolution, changelog rows) on a second pool connection while the
   * current one is written; default true. false: every batch is computed inside its own transaction, serially.
   */
  pipelining?: boolean
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
}

export interface WalConsumer {
  /** Acknowledges the durable LSN, releases the leader lock and closes the consumer's connections. */
  stop(): Promise<void>
  status(): WalConsumerStatus
  /** Resolves once everything up to `lsn` (`X/Y` or 64-bit) is durable; rejects after `timeoutMs` (default 30 s). */
  waitForLsn(lsn: string | bigint, timeoutMs?: number): Promise<void>
}

/** json and jsonb type OIDs: their text is JSON, handed to bucket functions as JSON values. */
const JSON_OIDS = new Set([114, 3802])

/** Advisory-lock key for a slot: stable across processes and versions (sha-256, first 8 bytes, signed). */
export function leaderLockKey(slotName: string): string {
  return createHash('sha256').update(`synchro:wal:${slotName}`).digest().readBigInt64BE(0).toString()
}

const noop = () => {}

/**
 * Starts the WAL consumer: elects one leader among all processes calling this for the same slot (advisory lock),
 * and the leader streams pgoutput changes into the bucketed changelog, exactly once.
 *
 * @example
 * const consumer = startWalConsumer({ pool, registry, replicationUrl: process.env.DATABASE_URL })
 * process.on('SIGTERM', () => consumer.stop())
 */
export function startWalConsumer(options: WalConsumerOptions): WalConsumer {
  guardPool(options.pool, options.logger ?? defaultLogger)
  const c = new Consumer(options)
  c.start()
  return c
}

interface RelationInfo {
  table: ResolvedTable | null
  rel: RelationMessage
  jsonColumns: Set<string>
}

interface Waiter {
  lsn: bigint
  resolve: () => void
}

class Consumer implements WalConsumer {
  readonly #o: Required<Omit<WalConsumerOptions, 'bucketFunction' | 'logger' | 'onError' | 'lagWarnMs'>> &
    WalConsumerOptions
  readonly #log: Logger
  readonly #lockKey: string
  readonly #lag: CaptureLag
  #stopping = false
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #leader = false
  #running = false
  #durable: bigint | null = null
  #serverEnd: bigint | null = null
  #lastError: string | null = null
  #lock: pg.Client | undefined
  #abortSession: ((err?: Error) => void) | undefined
  #waiters: Waiter[] = []

  constructor(o: WalConsumerOptions) {
    const slotName = o.slotName ?? 'synchro_slot'
    assertSlotName(slotName)
    this.#o = {
      ...o,
      slotName,
      publicationName: o.publicationName ?? 'synchro_pub',
      statusIntervalMs: o.statusIntervalMs ?? 10_000,
      leaderRetryMs: o.leaderRetryMs ?? 1_000,
      batchMaxEvents: o.batchMaxEvents ?? 10_000,
      pipelining: o.pipelining ?? true,
    }
    this.#log = o.logger ?? defaultLogger
    this.#lockKey = leaderLockKey(slotName)
    this.#lag = new CaptureLag(this.#log, o.lagWarnMs ?? 10_000)
  }

  start(): void {
    this.#loop = this.#run()
  }

  status(): WalConsumerStatus {
    const lag = this.#serverEnd !== null && this.#durable !== null ? this.#serverEnd - this.#durable : null
    return {
      leader: this.#leader,
      running: this.#running,
      lastLsn: this.#durable === null ? null : bigintToLsn(this.#durable),
      lagBytes: lag === null ? null : Number(lag > 0n ? lag : 0n),
      lastError: this.#lastError,
    }
  }

  waitForLsn(lsn: string | bigint, timeoutMs = 30_000): Promise<void> {
    const target = typeof lsn === 'bigint' ? lsn : lsnToBigint(lsn)
    if (this.#durable !== null && this.#durable >= target) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        lsn: target,
        resolve: () => {
          clearTimeout(timer)
          resolve()
        },
      }
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w)
        reject(new WalError('wal_timeout', `LSN ${bigintToLsn(target)} not reached within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#waiters.push(w)
    })
  }

  async stop(): Promise<void> {
    this.#stopping = true
    this.#abortSession?.()
    this.#wake?.()
    await this.#loop
  }

  #setDurable(lsn: bigint): void {
    if (this.#durable !== null && lsn <= this.#durable) return
    this.#durable = lsn
    if (this.#waiters.length === 0) return
    const ready = this.#waiters.filter((w) => w.lsn <= lsn)
    this.#waiters = this.#waiters.filter((w) => w.lsn > lsn)
    for (const w of ready) w.resolve()
  }

  #report(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err))
    // Both reach operators (the log, /healthz): never a PostgreSQL message that may quote row values.
    this.#lastError = safeErrorMessage(e)
    this.#log.error({ err: safeErrorFacts(e), code: (e as WalError).code }, 'wal consumer error')
    try {
      this.#o.onError?.(e)
    } catch {
      // A failing callback must not take the consumer down.
    }
  }

  /** Sleeps `ms` unless stop() is called. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms)
      function done() {
        clearTimeout(t)
        resolve()
      }
      this.#wake = done
    })
  }

  async #run(): Promise<void> {
    let backoff = 100
    while (!this.#stopping) {
      try {
        if (!(await this.#acquireLock())) {
          await this.#sleep(this.#o.leaderRetryMs)
          continue
        }
        const streamed = await this.#session()
        if (streamed) backoff = 100
      } catch (err) {
        if (this.#stopping) break
        this.#report(err)
        if (err instanceof WalLeadershipLostError) this.#dropLock()
        // A setup problem (wal_level, privileges) waits for an operator: retry slowly instead of logging every 2 s.
        await this.#sleep(err instanceof WalConfigurationError ? 10_000 : backoff)
        // Reconnect with exponential backoff, capped: fast after a blip, gentle during an outage.
        backoff = Math.min(backoff * 2, 2_000)
      }
    }
    await this.#releaseLock()
  }

  /** Takes (or confirms) the leader lock on a dedicated normal connection. */
  async #acquireLock(): Promise<boolean> {
    if (this.#leader && this.#lock) return true
    if (!this.#lock) {
      const client = new pg.Client({
        connectionString: this.#o.replicationUrl,
        keepAlive: true,
        application_name: 'synchro-wal-leader',
      })
      client.on('error', (err) => this.#lockLost(client, err))
      client.on('end', () => this.#lockLost(client))
      try {
        await client.connect()
      } catch (err) {
        throw new WalConnectionError(`leader-lock connection failed: ${(err as Error).message}`, { cause: err })
      }
      this.#lock = client
    }
    const { rows } = await this.#lock.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [
      this.#lockKey,
    ])
    this.#leader = rows[0]?.ok === true
    if (this.#leader) this.#log.info({ slot: this.#o.slotName }, 'wal consumer: became leader')
    return this.#leader
  }

  #lockLost(client: pg.Client, err?: Error): void {
    if (client !== this.#lock) return
    this.#lock = undefined
    const was = this.#leader
    this.#leader = false
    if (was && !this.#stopping) this.#abortSession?.(new WalLeadershipLostError({ cause: err }))
  }

  #dropLock(): void {
    const l = this.#lock
    this.#lock = undefined
    this.#leader = false
    l?.end().catch(() => {})
  }

  async #releaseLock(): Promise<void> {
    const l = this.#lock
    this.#lock = undefined
    if (l) {
      if (this.#leader) await l.query('SELECT pg_advisory_unlock($1::bigint)', [this.#lockKey]).catch(() => {})
      await l.end().catch(() => {})
    }
    this.#leader = false
  }

  /** One leader session: setup, stream, apply batches until an error or stop. Returns true if it streamed. */
  async #session(): Promise<boolean> {
    const o = this.#o
    const { pool, registry, slotName } = o
    await assertLogicalWal(pool)
    await ensurePublication(pool, registry, o.publicationName)
    const changed = await ensureReplicaIdentityFull(pool, registry)
    if (changed.length > 0) this.#log.info({ tables: changed }, 'wal consumer: set REPLICA IDENTITY FULL')
    const catalog = await ColumnCatalog.load(pool, registry)
    const applier = new BatchApplier(pool, new BucketResolver(registry, catalog, o.bucketFunction), slotName, this.#log)
    const oids = await tableOids(pool, registry)
    const stored = await applier.storedLsn()
    const slot = await ensureSlot(pool, slotName)
    if (slot.created && stored > 0n) this.#report(new WalSlotRecreatedError(slotName, bigintToLsn(stored)))
    // Resume after whichever is further: our stored position (covers a crash between commit and ack) or the
    // slot's (covers idle acks of WAL that held none of our changes).
    const start = maxLsn(stored, slot.confirmedFlushLsn)
    // Batches use two connections at once (one writes, one prepares the next batch): open them now, not while
    // the first batch waits.
    await Promise.all([pool.query('SELECT 1'), pool.query('SELECT 1')])
    this.#setDurable(start)
    if (this.#stopping) return false

    let failure: Error | undefined
    let settle: () => void = noop
    const ended = new Promise<void>((resolve) => {
      settle = resolve
    })
    const fail = (err?: Error) => {
      if (err && !failure) failure = err
      settle()
    }
    this.#abortSession = fail

    const relations = new Map<number, RelationInfo>()
    const pending: WalTransaction[] = []
    let pendingEvents = 0
    let current: Change[] | null = null
    let applying: Promise<void> | null = null
    let paused = false
    const highWater = o.batchMaxEvents * 4
    let stream: ReplicationStream | undefined

    const idle = () => pending.length === 0 && applying === null && ahead === null && current === null
    const ack = (replyRequested = false) => {
      if (this.#durable !== null) stream?.sendStatus(this.#durable, replyRequested)
    }

    /** Takes the next batch off `pending`: whole transactions, at least one even if it alone exceeds the limit. */
    const takeBatch = (): WalTransaction[] | null => {
      if (pending.length === 0) return null
      let n = 0
      let events = 0
      while (
        n < pending.length &&
        (n === 0 || events + (pending[n] as WalTransaction).changes.length <= o.batchMaxEvents)
      ) {
        events += (pending[n] as WalTransaction).changes.length
        n++
      }
      pendingEvents -= events
      if (paused && pendingEvents < highWater / 2) {
        paused = false
        stream?.resume()
      }
      return pending.splice(0, n)
    }

    // Pipelining: once the batch being written holds the lock and its edge state is final (`writing`), the next
    // batch is computed on another connection while the first one writes and commits. It is started as soon as a
    // full batch is pending (or, failing that, computed under the lock after the commit, as without pipelining).
    let writing: PreparedBatch | null = null
    let ahead: { batch: WalTransaction[]; prepared: Promise<PreparedBatch | undefined> } | null = null
    const prepareAhead = () => {
      if (!o.pipelining || !writing || ahead || failure || pending.length === 0) return
      const batch = takeBatch()
      if (batch) ahead = { batch, prepared: applier.prepare(batch, writing) }
    }

    const drain = async () => {
      try {
        while (!failure) {
          let batch: WalTransaction[] | null
          let prepared: PreparedBatch | undefined
          const w0 = performance.now()
          if (ahead) {
            batch = ahead.batch
            prepared = await ahead.prepared
            ahead = null
          } else batch = takeBatch()
          const waited = Math.round(performance.now() - w0)
          if (!batch || failure) break
          const started = performance.now()
          const res = await tracedApply(applier, batch, {
            prepared,
            onReady: (b) => {
              writing = b
              prepareAhead()
            },
          })
          writing = null
          this.#setDurable(res.lsn)
          this.#lag.observe(batch, bigintToLsn(res.lsn), this.status().lagBytes)
          // Only now, after COMMIT, may the server forget this WAL.
          ack()
          this.#log.debug(
            {
              txns: batch.length,
              changelogRows: res.changelogRows,
              ruleFailures: res.ruleFailures,
              skipped: res.skippedTransactions,
              pipelined: res.pipelined,
              waitedMs: waited,
              ms: Math.round(performance.now() - started),
              ...res.timings,
              lsn: bigintToLsn(res.lsn),
            },
            'wal batch applied',
          )
        }
      } finally {
        writing = null
        // A batch computed ahead holds no locks and writes nothing; let it finish so its connection is released.
        // Its transactions are received again after the session restarts (nothing past the durable LSN is acked).
        if (ahead) await ahead.prepared
        ahead = null
      }
    }
    const kick = () => {
      if (applying || failure) return
      applying = drain()
        .catch((err: unknown) => fail(err instanceof Error ? err : new Error(String(err))))
        .finally(() => {
          applying = null
          if (pending.length > 0 && !failure) kick()
        })
    }

    let currentXid: number | undefined
    const onMessage = (payload: Buffer) => {
      let msg: ReturnType<typeof decodePgoutput>
      try {
        msg = decodePgoutput(payload)
      } catch (err) {
        // §3 J 130: a message we cannot decode is logged and skipped.
        this.#report(err)
        return
      }
      switch (msg.tag) {
        case 'begin':
          current = []
          currentXid = msg.xid
          return
        case 'relation':
          relations.set(msg.relationId, relationInfo(msg, oids, registry))
          return
        case 'insert':
        case 'update':
        case 'delete': {
          const info = relations.get(msg.relationId)
          if (!info?.table || !current) return
          const change = rowChange(msg, info, info.table)
          if (change) current.push(change)
          else this.#log.warn({ table: info.table.tableName }, 'wal: row change without id skipped')
          return
        }
        case 'truncate': {
          if (!current) return
          const tables = msg.relationIds
            .map((id) => relations.get(id)?.table ?? oids.get(id))
            .filter((t): t is ResolvedTable => t !== undefined && t !== null)
          if (tables.length > 0) current.push({ kind: 'truncate', tables })
          return
        }
        case 'commit': {
          const changes = current ?? []
          current = null
          pending.push({ endLsn: msg.endLsn, changes, xid: currentXid, commitTime: msg.commitTime })
          pendingEvents += changes.length
          if (!paused && pendingEvents > highWater) {
            paused = true
            stream?.pause()
          }
          kick()
          prepareAhead()
          return
        }
        default:
          return
      }
    }

    try {
      stream = await ReplicationStream.start({
        url: o.replicationUrl,
        slotName,
        publicationName: o.publicationName,
        startLsn: start,
        handlers: {
          onData: (walEnd, payload) => {
            if (this.#serverEnd === null || walEnd > this.#serverEnd) this.#serverEnd = walEnd
            if (!failure) onMessage(payload)
          },
          onKeepalive: (walEnd, replyRequested) => {
            if (this.#serverEnd === null || walEnd > this.#serverEnd) this.#serverEnd = walEnd
            // Nothing in flight: everything up to walEnd is either applied or irrelevant to us, so let the
            // server recycle that WAL (otherwise an idle slot pins WAL forever).
            if (idle()) this.#setDurable(walEnd)
            if (replyRequested || idle()) ack(replyRequested)
          },
        },
      })
    } catch (err) {
      this.#abortSession = undefined
      throw err
    }
    this.#running = true
    this.#log.info({ slot: slotName, start: bigintToLsn(start) }, 'wal consumer: streaming')
    stream.done.then(
      () => fail(new WalConnectionError('replication stream ended')),
      (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
    )
    const timer = setInterval(() => {
      if (idle() && this.#serverEnd !== null) this.#setDurable(this.#serverEnd)
      ack()
      // Probe the lock session so a silently dead leader connection is noticed within one interval.
      this.#lock?.query('SELECT 1').catch(() => {})
    }, o.statusIntervalMs)
    try {
      if (!this.#stopping) await ended
    } finally {
      clearInterval(timer)
      this.#running = false
      this.#abortSession = undefined
      // Let an in-flight batch finish (its transaction commits or rolls back as a unit), then ack what is durable.
      if (applying) await applying
      ack()
      await stream.close()
    }
    if (failure && !this.#stopping) throw failure
    return true
  }
}

function relationInfo(rel: RelationMessage, oids: Map<number, ResolvedTable>, registry: Registry): RelationInfo {
  // By OID first (exact, follows search_path); by name for a table recreated since the session started.
  const table =
    oids.get(rel.relationId) ??
    registry.get(`${rel.namespace}.${rel.name}`) ??
    (rel.namespace === 'public' ? registry.get(rel.name) : undefined) ??
    null
  const jsonColumns = new Set(rel.columns.filter((c) => JSON_OIDS.has(c.typeOid)).map((c) => c.name))
  return { table, rel, jsonColumns }
}

type RowMessage = Extract<ReturnType<typeof decodePgoutput>, { tag: 'insert' | 'update' | 'delete' }>

/** Builds a RowChange; unchanged-TOAST values are taken from the old row (REPLICA IDENTITY FULL) or re-read later. */
function rowChange(msg: RowMessage, info: RelationInfo, table: ResolvedTable): RowChange | null {
  const cols = info.rel.columns
  let row: TextRow
  let oldRow: TextRow | null = null
  let missing: string[] | null = null
  if (msg.tag === 'insert') row = toRow(cols, msg.newTuple, null, null)
  else if (msg.tag === 'update') {
    // Only updates carry "unchanged TOAST" markers.
    missing = []
    row = toRow(cols, msg.newTuple, msg.oldKind === 'O' ? msg.oldTuple : null, missing)
    oldRow = msg.oldTuple ? toRow(cols, msg.oldTuple, null, null) : null
  } else row = toRow(cols, msg.oldTuple, null, null)
  const id = row[table.idColumn] ?? (missing?.includes(table.idColumn) ? oldRow?.[table.idColumn] : undefined)
  if (id === undefined || id === null) return null
  const change: RowChange = { kind: msg.tag, table, id, row, oldRow, jsonColumns: info.jsonColumns }
  if (missing && missing.length > 0) change.missing = missing
  return change
}

/** A tuple as a row; unchanged-TOAST values come from `fallback` (the full old tuple) or are listed in `missing`. */
function toRow(
  cols: RelationMessage['columns'],
  tuple: TupleValue[],
  fallback: TupleValue[] | null,
  missing: string[] | null,
): TextRow {
  const row: TextRow = {}
  for (let i = 0; i < cols.length && i < tuple.length; i++) {
    const name = (cols[i] as { name: string }).name
    let v = tuple[i] as TupleValue
    if (v === UNCHANGED) {
      const old = fallback?.[i]
      if (old !== undefined && old !== UNCHANGED) v = old
      else {
        missing?.push(name)
        continue
      }
    }
    row[name] = v
  }
  return row
}
