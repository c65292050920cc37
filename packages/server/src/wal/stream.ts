import pg from 'pg'
import { WalConnectionError, WalSlotBusyError, WalSlotMissingError } from './errors.js'
import { bigintToLsn, pgNowMicros } from './lsn.js'

/**
 * The parts of pg's internal Connection a replication stream needs. Undocumented but stable since pg 7 (and what
 * pg-logical-replication relies on); the `*.pg.test.ts` suite exercises them against a real server.
 */
interface PgConnectionInternals {
  on(event: 'copyData', cb: (msg: { chunk: Buffer }) => void): void
  once(event: 'replicationStart', cb: () => void): void
  sendCopyFromChunk(chunk: Buffer): void
  stream: { pause(): void; resume(): void }
}

export interface StreamHandlers {
  /** An XLogData message: the server's current WAL end and the pgoutput payload. */
  onData(walEnd: bigint, payload: Buffer): void
  /** A primary keepalive; `walEnd` is the server's current send position. */
  onKeepalive(walEnd: bigint, replyRequested: boolean): void
}

export interface StreamOptions {
  url: string
  slotName: string
  publicationName: string
  startLsn: bigint
  handlers: StreamHandlers
  /** 2: protocol 2 with `streaming 'on'` (PostgreSQL ≥ 14: big transactions arrive while in progress); default 1. */
  protoVersion?: 1 | 2
  /** The walsender's `logical_decoding_work_mem` (e.g. `64kB`): past it, a transaction is streamed (or spilled). */
  logicalDecodingWorkMem?: string
}

/** One START_REPLICATION session (pgoutput protocol 1, or 2 with streaming) on pg's replication connection. */
export class ReplicationStream {
  readonly #client: pg.Client
  readonly #conn: PgConnectionInternals
  #closing = false
  /** Settles when the stream ends: rejects with a WalError unless we closed it ourselves. */
  readonly done: Promise<void>

  private constructor(client: pg.Client, done: Promise<void>) {
    this.#client = client
    this.#conn = (client as unknown as { connection: PgConnectionInternals }).connection
    this.done = done
  }

  /** Connects, starts streaming at `startLsn`, and resolves once the server has switched to COPY BOTH mode. */
  static async start(o: StreamOptions): Promise<ReplicationStream> {
    // `replication` is a real pg option (sent in the startup packet) that @types/pg does not declare.
    const config: pg.ClientConfig & { replication: string } = {
      connectionString: o.url,
      replication: 'database',
      keepAlive: true,
      // Named so `pg_stat_activity` / `synchrod status` show which process consumes.
      application_name: 'synchro-wal',
    }
    if (o.logicalDecodingWorkMem !== undefined) {
      if (!/^\d+\s*(kB|MB|GB)?$/.test(o.logicalDecodingWorkMem)) {
        throw new TypeError(`logicalDecodingWorkMem must look like "64kB" or "64MB", got ${o.logicalDecodingWorkMem}`)
      }
      config.options = `-c logical_decoding_work_mem=${o.logicalDecodingWorkMem.replaceAll(' ', '')}`
    }
    const client = new pg.Client(config)
    let lastError: unknown
    client.on('error', (err) => {
      lastError = err
    })
    try {
      await client.connect()
    } catch (err) {
      throw new WalConnectionError(`replication connection failed: ${(err as Error).message}`, { cause: err })
    }
    const conn = (client as unknown as { connection: PgConnectionInternals }).connection
    conn.on('copyData', ({ chunk }) => {
      const kind = chunk[0]
      if (kind === 0x77 /* w: XLogData */) {
        o.handlers.onData(chunk.readBigUInt64BE(9), chunk.subarray(25))
      } else if (kind === 0x6b /* k: primary keepalive */) {
        o.handlers.onKeepalive(chunk.readBigUInt64BE(1), chunk[17] === 1)
      }
    })
    const started = new Promise<void>((resolve) => conn.once('replicationStart', resolve))
    // The publication name is an identifier list inside a string literal: quote it as both.
    const pub = `'"${o.publicationName.replaceAll('"', '""').replaceAll("'", "''")}"'`
    const query = client.query(
      `START_REPLICATION SLOT ${o.slotName} LOGICAL ${bigintToLsn(o.startLsn)} (proto_version '${o.protoVersion ?? 1}'${o.protoVersion === 2 ? ", streaming 'on'" : ''}, publication_names ${pub})`,
    )
    let stream: ReplicationStream | undefined
    const done = query.then(
      () => {
        if (!stream?.closing) throw new WalConnectionError('replication stream ended by the server')
      },
      (err: unknown) => {
        if (stream?.closing) return
        throw mapError(err ?? lastError, o.slotName)
      },
    )
    try {
      await Promise.race([started, done])
    } catch (err) {
      await client.end().catch(() => {})
      throw err
    }
    stream = new ReplicationStream(client, done)
    // Observed by the consumer; a rejection with nobody listening yet must not crash the process.
    done.catch(() => {})
    client.on('end', () => {})
    return stream
  }

  /** True once close() was called: the stream's end is then expected, not an error. */
  get closing(): boolean {
    return this.#closing
  }

  /** Standby status update: everything up to `lsn` is durably processed (write = flush = apply). */
  sendStatus(lsn: bigint, replyRequested = false): void {
    if (this.#closing) return
    const buf = Buffer.alloc(34)
    buf[0] = 0x72 // r
    buf.writeBigUInt64BE(lsn, 1)
    buf.writeBigUInt64BE(lsn, 9)
    buf.writeBigUInt64BE(lsn, 17)
    buf.writeBigInt64BE(pgNowMicros(), 25)
    buf[33] = replyRequested ? 1 : 0
    this.#conn.sendCopyFromChunk(buf)
  }

  /** Stops reading from the socket (backpressure): the server blocks once TCP buffers fill. */
  pause(): void {
    this.#conn.stream.pause()
  }

  resume(): void {
    this.#conn.stream.resume()
  }

  /** Closes the connection; `done` then resolves. */
  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.#conn.stream.resume()
    await this.#client.end().catch(() => {})
  }
}

function mapError(err: unknown, slotName: string): Error {
  const code = (err as { code?: string } | undefined)?.code
  const message = (err as Error | undefined)?.message ?? 'replication connection ended'
  if (code === '42704') return new WalSlotMissingError(slotName, { cause: err })
  if (code === '55006') return new WalSlotBusyError(slotName, { cause: err })
  return new WalConnectionError(`replication stream ended: ${message}`, { cause: err })
}
