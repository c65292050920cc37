import { prepareBackfill } from '../buckets/backfill.js'
import { ColumnCatalog } from '../buckets/catalog.js'
import { BucketResolver } from '../buckets/resolver.js'
import type { WalTransaction } from '../changelog/changes.js'
import { BatchApplier } from '../changelog/writer.js'
import type { Logger } from '../util/log.js'
import { TransactionAssembler } from './assembler.js'
import { EdgeBackfill } from './backfill.js'
import type { DurablePosition } from './durable.js'
import { WalConnectionError, WalSlotRecreatedError } from './errors.js'
import { bigintToLsn, maxLsn } from './lsn.js'
import { type AppliedBatch, ApplyPipeline } from './pipeline.js'
import { BatchQueue } from './queue.js'
import {
  assertLogicalWal,
  ensurePublication,
  ensureReplicaIdentityFull,
  ensureSlot,
  slotExists,
  tableOids,
} from './setup.js'
import { SpillDirectory } from './spill.js'
import { ReplicationStream } from './stream.js'
import type { WalConsumerOptions } from './types.js'

/** The consumer's options with their defaults filled in. */
export type ConsumerSettings = Required<
  Omit<
    WalConsumerOptions,
    'bucketFunction' | 'logger' | 'onError' | 'lagWarnMs' | 'spillDir' | 'logicalDecodingWorkMem'
  >
> &
  WalConsumerOptions

/** What a leader session reads and reports of its consumer. */
export interface SessionHost {
  readonly o: ConsumerSettings
  readonly log: Logger
  readonly durable: DurablePosition
  stopping(): boolean
  report(err: unknown): void
  /** While the session streams: a function ending it (with the error that ends it, if any). */
  setAbort(abort: ((err?: Error) => void) | undefined): void
  setRunning(running: boolean): void
  /** The server's WAL end as seen in a message. */
  sawServerEnd(walEnd: bigint): void
  /** Probes the leader-lock connection. */
  probeLock(): void
  /** A batch committed. */
  applied(batch: AppliedBatch, ack: () => void): void
  /** The registered tables whose rows the capture never saw written are not all given edges yet (see backfill.ts). */
  backfilling(tables: string[]): void
}

const noop = () => {}

/** One leader session: setup, stream, apply batches until an error or stop. Returns true if it streamed. */
export async function runSession(host: SessionHost): Promise<boolean> {
  const o = host.o
  const { registry, slotName } = o
  const setup = await setUp(host)
  const { applier, oids, start, streaming } = setup
  host.durable.advance(start)
  if (host.stopping()) return false

  let failure: Error | undefined
  let settle: () => void = noop
  const ended = new Promise<void>((resolve) => {
    settle = resolve
  })
  let stream: ReplicationStream | undefined
  // The server's WAL end as this session's messages show it. Not the consumer's: what an earlier session received
  // but did not write is sent again, and is not "nothing in flight" until this session has it.
  let serverEnd: bigint | null = null
  const saw = (walEnd: bigint) => {
    if (serverEnd === null || walEnd > serverEnd) serverEnd = walEnd
    host.sawServerEnd(walEnd)
  }
  const queue = new BatchQueue(o.batchMaxEvents, { pause: () => stream?.pause(), resume: () => stream?.resume() })
  const ack = (replyRequested = false) => {
    const durable = host.durable.lsn
    if (durable !== null) stream?.sendStatus(durable, replyRequested)
  }
  const fail = (err?: Error) => {
    if (err && !failure) failure = err
    pipeline.stop()
    settle()
  }
  const pipeline = new ApplyPipeline(applier, queue, o.pipelining, (b) => applied(b), fail)
  const backfill = sessionBackfill(host, setup, (txn) => {
    queue.push(txn)
    pipeline.kick()
  })
  const applied = (b: AppliedBatch) => {
    backfill.applied(b.txns)
    host.applied(b, ack)
    backfill.durable(host.durable.lsn)
  }
  host.setAbort(fail)
  let spillDir: SpillDirectory | undefined
  const assembler = new TransactionAssembler(
    oids,
    registry,
    {
      commit: (txn) => {
        if (txn.spill) {
          const fields = { xid: txn.xid, changes: txn.spill.size, streamed: txn.spill.streamed }
          host.log.info(fields, 'wal: spilled transaction committed')
        }
        queue.push(txn)
        pipeline.kick()
        backfill.saw(txn.endLsn)
      },
      aborted: (xid, bytes) => host.log.debug({ xid, bytes }, 'wal: streamed transaction aborted'),
      skipped: (err, table) => {
        if (err) host.report(err)
        else host.log.warn({ table }, 'wal: row change without id skipped')
      },
    },
    () => {
      spillDir ??= new SpillDirectory(o.spillDir)
      return spillDir.path
    },
    o.batchMaxEvents,
    o.bucketFunction,
  )
  const cleanUp = () => {
    assembler.dispose()
    queue.dispose()
    spillDir?.remove()
  }
  // Nothing in flight. Never once the session failed: it drops the messages that still arrive (onData), so a
  // keepalive's WAL end may lie past changes nobody wrote.
  const idle = () => !failure && pipeline.idle && !assembler.inTransaction

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
          saw(walEnd)
          if (!failure) assembler.onMessage(payload)
        },
        onKeepalive: (walEnd, replyRequested) => {
          saw(walEnd)
          // Every transaction that ends before walEnd was sent before this keepalive, so it is queued.
          backfill.saw(walEnd)
          // Nothing in flight: everything up to walEnd is either applied or irrelevant to us, so let the
          // server recycle that WAL (otherwise an idle slot pins WAL forever).
          if (idle()) host.durable.advance(walEnd)
          if (replyRequested || idle()) ack(replyRequested)
          backfill.durable(host.durable.lsn)
        },
      },
    })
  } catch (err) {
    host.setAbort(undefined)
    cleanUp()
    await backfill.stop()
    throw err
  }
  host.setRunning(true)
  host.log.info({ slot: slotName, start: bigintToLsn(start) }, 'wal consumer: streaming')
  stream.done.then(
    () => fail(new WalConnectionError('replication stream ended')),
    (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
  )
  const timer = setInterval(() => {
    if (idle() && serverEnd !== null) host.durable.advance(serverEnd)
    backfill.durable(host.durable.lsn)
    // A backfill chunk waiting for the stream to pass its position asks for a keepalive (the server's send position).
    ack(backfill.waitingForStream)
    // Probe the lock session so a silently dead leader connection is noticed within one interval.
    host.probeLock()
  }, o.statusIntervalMs)
  try {
    if (!host.stopping()) await ended
  } finally {
    clearInterval(timer)
    host.setRunning(false)
    host.setAbort(undefined)
    await backfill.stop()
    // Let an in-flight batch finish (its transaction commits or rolls back as a unit), then ack what is durable.
    await pipeline.settled()
    ack()
    await stream.close()
    cleanUp()
  }
  if (failure && !host.stopping()) throw failure
  return true
}

/** The session's edge backfill; `push` queues a chunk behind the transactions queued so far. */
function sessionBackfill(
  host: SessionHost,
  setup: Awaited<ReturnType<typeof setUp>>,
  push: (txn: WalTransaction) => void,
): EdgeBackfill {
  const { applier } = setup
  const backfill = new EdgeBackfill(
    {
      pool: host.o.pool,
      resolver: applier.resolver,
      watch: applier.backfill,
      chunkRows: host.o.batchMaxEvents,
      log: host.log,
      report: (err) => host.report(err),
      push,
      pending: (tables) => host.backfilling(tables),
    },
    setup.backfillTables,
    setup.backlogEnd,
  )
  host.backfilling(backfill.tables)
  return backfill
}

/** The session's setup: publication, replica identity, catalog, the stored and the slot's position. */
async function setUp(host: SessionHost) {
  const o = host.o
  const { pool, registry, slotName } = o
  await assertLogicalWal(pool)
  const oids = await tableOids(pool, registry) // before anything is changed: a table capture cannot serve fails here
  await ensurePublication(pool, registry, o.publicationName)
  const changed = await ensureReplicaIdentityFull(pool, registry)
  if (changed.length > 0) host.log.info({ tables: changed }, 'wal consumer: set REPLICA IDENTITY FULL')
  const catalog = await ColumnCatalog.load(pool, registry)
  const applier = new BatchApplier(pool, new BucketResolver(registry, catalog, o.bucketFunction), slotName, host.log)
  applier.spillPart = o.batchMaxEvents
  const stored = await applier.storedLsn()
  // Before the slot is created: rows written while none existed were not captured, every table starts over.
  const backfillTables = await prepareBackfill(pool, registry, !(await slotExists(pool, slotName)), host.log)
  const slot = await ensureSlot(pool, slotName)
  if (slot.created && stored > 0n) host.report(new WalSlotRecreatedError(slotName, bigintToLsn(stored)))
  // Resume after whichever is further: our stored position (covers a crash between commit and ack) or the
  // slot's (covers idle acks of WAL that held none of our changes).
  const start = maxLsn(stored, slot.confirmedFlushLsn)
  // Batches use two connections at once (one writes, one prepares the next batch): open them now, not while
  // the first batch waits.
  const [version] = await Promise.all([
    // A WAL record of ours marks the backlog's end: the stream passes exactly its end (see buckets/backfill.ts).
    pool.query<{ v: string; lsn: string }>(
      `SELECT current_setting($1) AS v,
              (pg_logical_emit_message(true, 'synchro', 'capture start') - '0/0'::pg_lsn)::text AS lsn`,
      ['server_version_num'],
    ),
    pool.query('SELECT 1'),
  ])
  const streaming = o.streaming && Number(version.rows[0]?.v) >= 140000
  // The backlog: the backfill starts once the capture has written it.
  const backlogEnd = BigInt(version.rows[0]?.lsn ?? '0')
  return { applier, oids, start, streaming, backfillTables, backlogEnd }
}
