import type { Change, WalTransaction } from '../changelog/changes.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { PgoutputMessage } from './pgoutput.js'
import { Relations } from './relations.js'
import { type SpillDecoder, SpillFile } from './spill.js'
import { ROW_TAGS, StreamedTransactions } from './streams.js'

export interface AssemblerEvents {
  /** A source transaction committed: hand it over in commit order. */
  commit(txn: WalTransaction): void
  /** A streamed transaction aborted: its spill file (`bytes` long) was deleted. */
  aborted?(xid: number, bytes: number): void
  /** A message that cannot be decoded (logged and skipped) or a row change without its id. */
  skipped(err: Error | null, table?: string): void
}

/**
 * Turns pgoutput messages into committed source transactions of registered tables: keeps the relation map (the
 * server describes each table before its first change, and again after it changes) and the transaction in progress.
 *
 * Protocol 2 streaming: PostgreSQL sends a transaction bigger than its `logical_decoding_work_mem` in blocks while it
 * is still running (Stream Start … Stop), interleaved with other transactions, then Stream Commit or Stream Abort.
 * Those blocks go to a spill file as they arrive (not decoded, not in the heap); at commit the transaction is handed
 * over with the file, which the changelog writer reads in parts; an abort deletes the file.
 */
export class TransactionAssembler {
  readonly #relations: Relations
  #current: Change[] | null = null
  #xid: number | undefined
  /** Streamed transactions (protocol 2) not committed yet. */
  readonly #streams: StreamedTransactions
  /**
   * The transaction being received (Begin … Commit) once it outgrew `spillAfter` changes, and the decoder of its
   * records (they are decoded when the writer reads them, with the relations as they were where they begin).
   */
  #spill: { file: SpillFile; decode: SpillDecoder } | null = null

  constructor(
    readonly oids: Map<number, ResolvedTable>,
    readonly registry: Registry,
    readonly events: AssemblerEvents,
    /** Directory for spill files (created on first use). */
    readonly spillDir: () => string = () => {
      throw new Error('streamed transaction without a spill directory')
    },
    /**
     * A transaction sent whole at its commit (protocol 1, or one the server did not stream) goes to a spill file
     * once it has this many changes; the first ones stay in memory as its head.
     */
    readonly spillAfter = Number.POSITIVE_INFINITY,
    /** The consumer's global bucket function, if any. */
    globalFunction?: string,
  ) {
    this.#relations = new Relations(oids, registry, events, globalFunction)
    this.#streams = new StreamedTransactions(this.#relations, events, () => this.spillDir())
  }

  /** A transaction is being received (its changes are not handed over yet). */
  get inTransaction(): boolean {
    return this.#current !== null || this.#streams.open
  }

  /** Frees the spill files of streamed transactions that did not commit (the session ends). */
  dispose(): void {
    this.#streams.dispose()
    this.#spill?.file.dispose()
    this.#spill = null
  }

  /** One XLogData payload. */
  onMessage(payload: Buffer): void {
    if (this.#streams.accept(payload)) return
    const tag = payload[0] as number
    if (this.#spill && ROW_TAGS.has(tag)) {
      this.#spill.file.append(0, payload, true)
      return
    }
    let msg: PgoutputMessage
    try {
      msg = this.#relations.decode(payload)
    } catch (err) {
      // A message we cannot decode is logged and skipped.
      this.events.skipped(err as Error)
      return
    }
    switch (msg.tag) {
      case 'stream_start':
      case 'stream_stop':
      case 'stream_commit':
      case 'stream_abort':
        this.#streams.control(msg)
        return
      case 'begin':
        this.#current = []
        this.#xid = msg.xid
        return
      case 'relation':
        this.#relations.describe(msg)
        // A spilled transaction's changes are decoded later: they need the relation as it was here.
        this.#spill?.file.append(0, payload, false)
        return
      case 'insert':
      case 'update':
      case 'delete':
        this.#push(this.#relations.rowChange(msg, payload))
        return
      case 'truncate':
        this.#push(this.#relations.truncate(msg))
        return
      case 'commit': {
        const changes = this.#current ?? []
        this.#current = null
        const txn: WalTransaction = { endLsn: msg.endLsn, changes, xid: this.#xid, commitTime: msg.commitTime }
        if (this.#spill) {
          this.#spill.file.seal(this.#spill.decode)
          txn.spill = this.#spill.file
          txn.changes = []
          this.#spill = null
        }
        this.events.commit(txn)
        return
      }
      default:
        return
    }
  }

  #push(c: Change | null): void {
    const cur = this.#current
    if (!c || !cur) return
    cur.push(c)
    if (cur.length >= this.spillAfter) {
      // Relations described from here on (a table altered inside the transaction) are recorded in the file.
      const file = new SpillFile(this.spillDir(), this.#xid ?? 0, false, cur)
      this.#spill = { file, decode: this.#relations.replayDecoder(false) }
      this.#current = []
    }
  }
}
