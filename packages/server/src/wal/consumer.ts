import { CaptureLag } from '../telemetry/events.js'
import { defaultLogger, type Logger, safeErrorFacts, safeErrorMessage } from '../util/log.js'
import { guardPool } from '../util/pool.js'
import { DurablePosition } from './durable.js'
import { WalConfigurationError, type WalError, WalLeadershipLostError } from './errors.js'
import { LeaderLock } from './leader.js'
import { bigintToLsn, lsnToBigint } from './lsn.js'
import type { AppliedBatch } from './pipeline.js'
import { type ConsumerSettings, runSession, type SessionHost } from './session.js'
import { assertSlotName } from './setup.js'
import type { WalConsumer, WalConsumerOptions, WalConsumerStatus } from './types.js'

export { leaderLockKey } from './leader.js'
export type { WalConsumer, WalConsumerOptions, WalConsumerStatus } from './types.js'

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

class Consumer implements WalConsumer {
  readonly #o: ConsumerSettings
  readonly #log: Logger
  readonly #lag: CaptureLag
  readonly #lock: LeaderLock
  readonly #durable = new DurablePosition()
  #stopping = false
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #running = false
  #serverEnd: bigint | null = null
  #lastError: string | null = null
  #abortSession: ((err?: Error) => void) | undefined
  #backfilling: string[] = []

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
    this.#lock = new LeaderLock(o.replicationUrl, slotName, this.#log, (err) => {
      if (!this.#stopping) this.#abortSession?.(new WalLeadershipLostError({ cause: err }))
    })
    this.#lag = new CaptureLag(this.#log, o.lagWarnMs ?? 10_000)
  }

  start(): void {
    this.#loop = this.#run()
  }

  status(): WalConsumerStatus {
    const durable = this.#durable.lsn
    const lag = this.#serverEnd !== null && durable !== null ? this.#serverEnd - durable : null
    return {
      leader: this.#lock.leader,
      running: this.#running,
      lastLsn: durable === null ? null : bigintToLsn(durable),
      lagBytes: lag === null ? null : Number(lag > 0n ? lag : 0n),
      lastError: this.#lastError,
      backfilling: this.#backfilling,
    }
  }

  waitForLsn(lsn: string | bigint, timeoutMs = 30_000): Promise<void> {
    return this.#durable.waitFor(typeof lsn === 'bigint' ? lsn : lsnToBigint(lsn), timeoutMs)
  }

  async stop(): Promise<void> {
    this.#stopping = true
    this.#abortSession?.()
    this.#wake?.()
    await this.#loop
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
        if (!(await this.#lock.acquire())) {
          await this.#sleep(this.#o.leaderRetryMs)
          continue
        }
        const streamed = await runSession(this.#host())
        if (streamed) backoff = 100
      } catch (err) {
        if (this.#stopping) break
        this.#report(err)
        if (err instanceof WalLeadershipLostError) this.#lock.drop()
        // A setup problem (wal_level, privileges) waits for an operator: retry slowly instead of logging every 2 s.
        await this.#sleep(err instanceof WalConfigurationError ? 10_000 : backoff)
        // Reconnect with exponential backoff, capped: fast after a blip, gentle during an outage.
        backoff = Math.min(backoff * 2, 2_000)
      }
    }
    await this.#lock.release()
  }

  /** What a leader session reads and reports of this consumer. */
  #host(): SessionHost {
    return {
      o: this.#o,
      log: this.#log,
      durable: this.#durable,
      stopping: () => this.#stopping,
      report: (err) => this.#report(err),
      setAbort: (abort) => {
        this.#abortSession = abort
      },
      setRunning: (running) => {
        this.#running = running
      },
      sawServerEnd: (walEnd) => {
        if (this.#serverEnd === null || walEnd > this.#serverEnd) this.#serverEnd = walEnd
      },
      probeLock: () => this.#lock.probe(),
      applied: (batch, ack) => this.#applied(batch, ack),
      backfilling: (tables) => {
        this.#backfilling = tables
      },
    }
  }

  /** A batch committed: it is durable, so the server may forget its WAL. */
  #applied(batch: AppliedBatch, ack: () => void): void {
    this.#durable.advance(batch.result.lsn)
    this.#lag.observe(batch.txns, bigintToLsn(batch.result.lsn), this.status().lagBytes)
    // Only now, after COMMIT, may the server forget this WAL.
    ack()
    this.#log.debug(batchFacts(batch), 'wal batch applied')
  }
}

/** What the debug log says of an applied batch. */
function batchFacts({ txns, result: res, waitedMs, ms }: AppliedBatch): Record<string, unknown> {
  return {
    txns: txns.length,
    changelogRows: res.changelogRows,
    ruleFailures: res.ruleFailures,
    skipped: res.skippedTransactions,
    pipelined: res.pipelined,
    waitedMs,
    ms,
    ...res.timings,
    lsn: bigintToLsn(res.lsn),
  }
}
