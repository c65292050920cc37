import { createHash } from 'node:crypto'
import pg from 'pg'
import { ColumnCatalog } from '../buckets/catalog.js'
import { BucketResolver } from '../buckets/resolver.js'
import { BatchApplier } from '../changelog/writer.js'
import { CaptureLag } from '../telemetry/events.js'
import { defaultLogger, type Logger, safeErrorFacts, safeErrorMessage } from '../util/log.js'
import { guardPool } from '../util/pool.js'
import { TransactionAssembler } from './assembler.js'
import {
  WalConfigurationError,
  WalConnectionError,
  WalError,
  WalLeadershipLostError,
  WalSlotRecreatedError,
} from './errors.js'
import { bigintToLsn, lsnToBigint, maxLsn } from './lsn.js'
import { type AppliedBatch, ApplyPipeline } from './pipeline.js'
import { BatchQueue } from './queue.js'
import {
  assertLogicalWal,
  assertSlotName,
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  tableOids,
} from './setup.js'
import { SpillDirectory } from './spill.js'
import { ReplicationStream } from './stream.js'
import type { WalConsumer, WalConsumerOptions, WalConsumerStatus } from './types.js'

export type { WalConsumer, WalConsumerOptions, WalConsumerStatus } from './types.js'

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

interface Waiter {
  lsn: bigint
  resolve: () => void
}

class Consumer implements WalConsumer {
  readonly #o: Required<
    Omit<
      WalConsumerOptions,
      'bucketFunction' | 'logger' | 'onError' | 'lagWarnMs' | 'spillDir' | 'logicalDecodingWorkMem'
    >
  > &
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
      streaming: o.streaming ?? true,
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
    applier.spillPart = o.batchMaxEvents
    const oids = await tableOids(pool, registry)
    const stored = await applier.storedLsn()
    const slot = await ensureSlot(pool, slotName)
    if (slot.created && stored > 0n) this.#report(new WalSlotRecreatedError(slotName, bigintToLsn(stored)))
    // Resume after whichever is further: our stored position (covers a crash between commit and ack) or the
    // slot's (covers idle acks of WAL that held none of our changes).
    const start = maxLsn(stored, slot.confirmedFlushLsn)
    // Batches use two connections at once (one writes, one prepares the next batch): open them now, not while
    // the first batch waits.
    const [version] = await Promise.all([
      pool.query<{ v: string }>('SELECT current_setting($1) AS v', ['server_version_num']),
      pool.query('SELECT 1'),
    ])
    const streaming = o.streaming && Number(version.rows[0]?.v) >= 140000
    this.#setDurable(start)
    if (this.#stopping) return false

    let failure: Error | undefined
    let settle: () => void = noop
    const ended = new Promise<void>((resolve) => {
      settle = resolve
    })
    let stream: ReplicationStream | undefined
    const queue = new BatchQueue(o.batchMaxEvents, { pause: () => stream?.pause(), resume: () => stream?.resume() })
    const ack = (replyRequested = false) => {
      if (this.#durable !== null) stream?.sendStatus(this.#durable, replyRequested)
    }
    const fail = (err?: Error) => {
      if (err && !failure) failure = err
      pipeline.stop()
      settle()
    }
    const pipeline = new ApplyPipeline(applier, queue, o.pipelining, (b) => this.#applied(b, ack), fail)
    this.#abortSession = fail
    let spillDir: SpillDirectory | undefined
    const assembler = new TransactionAssembler(
      oids,
      registry,
      {
        commit: (txn) => {
          if (txn.spill) {
            const fields = { xid: txn.xid, changes: txn.spill.size, streamed: txn.spill.streamed }
            this.#log.info(fields, 'wal: spilled transaction committed')
          }
          queue.push(txn)
          pipeline.kick()
        },
        aborted: (xid, bytes) => this.#log.debug({ xid, bytes }, 'wal: streamed transaction aborted'),
        skipped: (err, table) => {
          if (err) this.#report(err)
          else this.#log.warn({ table }, 'wal: row change without id skipped')
        },
      },
      () => {
        spillDir ??= new SpillDirectory(o.spillDir)
        return spillDir.path
      },
      o.batchMaxEvents,
    )
    const cleanUp = () => {
      assembler.dispose()
      queue.dispose()
      spillDir?.remove()
    }
    const idle = () => pipeline.idle && !assembler.inTransaction

    try {
      stream = await ReplicationStream.start({
        url: o.replicationUrl,
        slotName,
        publicationName: o.publicationName,
        startLsn: start,
        protoVersion: streaming ? 2 : 1,
        logicalDecodingWorkMem: o.logicalDecodingWorkMem,
        handlers: {
          onData: (walEnd, payload) => {
            if (this.#serverEnd === null || walEnd > this.#serverEnd) this.#serverEnd = walEnd
            if (!failure) assembler.onMessage(payload)
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
      cleanUp()
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
      await pipeline.settled()
      ack()
      await stream.close()
      cleanUp()
    }
    if (failure && !this.#stopping) throw failure
    return true
  }

  /** A batch committed: it is durable, so the server may forget its WAL. */
  #applied({ txns, result: res, waitedMs, ms }: AppliedBatch, ack: () => void): void {
    this.#setDurable(res.lsn)
    this.#lag.observe(txns, bigintToLsn(res.lsn), this.status().lagBytes)
    // Only now, after COMMIT, may the server forget this WAL.
    ack()
    this.#log.debug(
      {
        txns: txns.length,
        changelogRows: res.changelogRows,
        ruleFailures: res.ruleFailures,
        skipped: res.skippedTransactions,
        pipelined: res.pipelined,
        waitedMs,
        ms,
        ...res.timings,
        lsn: bigintToLsn(res.lsn),
      },
      'wal batch applied',
    )
  }
}
