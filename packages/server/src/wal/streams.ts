import type { WalTransaction } from '../changelog/changes.js'
import { decodePgoutput, type PgoutputMessage, type RelationMessage } from './pgoutput.js'
import type { Relations } from './relations.js'
import { SpillFile } from './spill.js'

/** Tags of data messages inside a stream block (all carry the sub/transaction id after the tag). */
const RELATION = 0x52
export const ROW_TAGS = new Set([0x49 /* I */, 0x55 /* U */, 0x44 /* D */, 0x54 /* T */])
const STREAM_DATA_TAGS = new Set([RELATION, 0x59 /* Y */, 0x4d /* M */, ...ROW_TAGS])

/** A streamed transaction not committed yet: its messages on disk, its relation messages also in memory. */
interface OpenStream {
  spill: SpillFile
  relations: RelationMessage[]
}

/** What a stream's end reports (see AssemblerEvents). */
interface StreamEvents {
  commit(txn: WalTransaction): void
  aborted?(xid: number, bytes: number): void
  skipped(err: Error | null, table?: string): void
}

/**
 * Protocol 2 streaming: the blocks of transactions still running (Stream Start … Stop, interleaved with other
 * transactions) go to one spill file per transaction as they arrive; Stream Commit hands the transaction over with
 * its file, Stream Abort deletes it (or drops a subtransaction's part).
 */
export class StreamedTransactions {
  readonly #byXid = new Map<number, OpenStream>()
  /** The transaction whose stream block is being received, if any. */
  #xid: number | null = null
  readonly #relations: Relations
  readonly #events: StreamEvents
  readonly #spillDir: () => string

  constructor(relations: Relations, events: StreamEvents, spillDir: () => string) {
    this.#relations = relations
    this.#events = events
    this.#spillDir = spillDir
  }

  /** Some streamed transaction has not committed or aborted yet. */
  get open(): boolean {
    return this.#byXid.size > 0
  }

  /** Frees the spill files of streamed transactions that did not commit (the session ends). */
  dispose(): void {
    for (const s of this.#byXid.values()) s.spill.dispose()
    this.#byXid.clear()
  }

  /** Records `payload` when it is a data message inside a stream block; false for any other message. */
  accept(payload: Buffer): boolean {
    if (this.#xid === null || !STREAM_DATA_TAGS.has(payload[0] as number) || payload.length < 5) return false
    this.#streamed(this.#xid, payload)
    return true
  }

  /** A data message inside a stream block: recorded as is (relation messages are also kept for the commit). */
  #streamed(xid: number, payload: Buffer): void {
    const open = this.#open(xid)
    const tag = payload[0] as number
    if (tag === RELATION) {
      try {
        open.relations.push(decodePgoutput(payload, true) as RelationMessage)
      } catch (err) {
        this.#events.skipped(err as Error)
        return
      }
    }
    open.spill.append(payload.readUInt32BE(1), payload, ROW_TAGS.has(tag))
  }

  #open(xid: number): OpenStream {
    let open = this.#byXid.get(xid)
    if (!open) {
      open = { spill: new SpillFile(this.#spillDir(), xid, true), relations: [] }
      this.#byXid.set(xid, open)
    }
    return open
  }

  /** Stream Start, Stop, Abort (of the transaction or a subtransaction) or Commit. */
  control(msg: Extract<PgoutputMessage, { tag: `stream_${string}` }>): void {
    switch (msg.tag) {
      case 'stream_start':
        this.#xid = msg.xid
        this.#open(msg.xid)
        return
      case 'stream_stop':
        this.#xid = null
        return
      case 'stream_abort': {
        const open = this.#byXid.get(msg.xid)
        if (msg.subxid !== msg.xid) open?.spill.abortSubtransaction(msg.subxid)
        else if (open) {
          this.#events.aborted?.(msg.xid, open.spill.bytes)
          open.spill.dispose()
          this.#byXid.delete(msg.xid)
        }
        return
      }
      case 'stream_commit': {
        const open = this.#byXid.get(msg.xid)
        this.#byXid.delete(msg.xid)
        const txn: WalTransaction = { endLsn: msg.endLsn, changes: [], xid: msg.xid, commitTime: msg.commitTime }
        if (open) {
          // The server counts a relation described inside a committed stream as described for what follows.
          for (const rel of open.relations) this.#relations.describe(rel)
          open.spill.seal(this.#relations.replayDecoder(true))
          txn.spill = open.spill
        }
        this.#events.commit(txn)
      }
    }
  }
}
