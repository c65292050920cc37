import type { TextRow } from '../buckets/resolver.js'
import type { Change, RowChange, WalTransaction } from '../changelog/changes.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { decodePgoutput, type PgoutputMessage, type RelationMessage, type TupleValue, UNCHANGED } from './pgoutput.js'
import { type SpillDecoder, SpillFile } from './spill.js'

/** Tags of data messages inside a stream block (all carry the sub/transaction id after the tag). */
const RELATION = 0x52
const ROW_TAGS = new Set([0x49 /* I */, 0x55 /* U */, 0x44 /* D */, 0x54 /* T */])
const STREAM_DATA_TAGS = new Set([RELATION, 0x59 /* Y */, 0x4d /* M */, ...ROW_TAGS])

/** A streamed transaction not committed yet: its messages on disk, its relation messages also in memory. */
interface OpenStream {
  spill: SpillFile
  relations: RelationMessage[]
}

/** json and jsonb type OIDs: their text is JSON, handed to bucket functions as JSON values. */
const JSON_OIDS = new Set([114, 3802])

interface RelationInfo {
  table: ResolvedTable | null
  rel: RelationMessage
  jsonColumns: Set<string>
}

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
  readonly #relations = new Map<number, RelationInfo>()
  #current: Change[] | null = null
  #xid: number | undefined
  /** The transaction whose stream block is being received, if any. */
  #streamXid: number | null = null
  readonly #streams = new Map<number, OpenStream>()
  /** The transaction being received (Begin … Commit) once it outgrew `spillAfter` changes. */
  #spill: SpillFile | null = null

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
  ) {}

  /** A transaction is being received (its changes are not handed over yet). */
  get inTransaction(): boolean {
    return this.#current !== null || this.#streams.size > 0
  }

  /** Frees the spill files of streamed transactions that did not commit (the session ends). */
  dispose(): void {
    for (const s of this.#streams.values()) s.spill.dispose()
    this.#streams.clear()
    this.#spill?.dispose()
    this.#spill = null
  }

  /** One XLogData payload. */
  onMessage(payload: Buffer): void {
    if (this.#streamXid !== null && STREAM_DATA_TAGS.has(payload[0] as number) && payload.length >= 5) {
      this.#streamed(this.#streamXid, payload)
      return
    }
    const tag = payload[0] as number
    if (this.#spill && ROW_TAGS.has(tag)) {
      this.#spill.append(0, payload, true)
      return
    }
    let msg: PgoutputMessage
    try {
      msg = decodePgoutput(payload)
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
        this.#stream(msg)
        return
      case 'begin':
        this.#current = []
        this.#xid = msg.xid
        return
      case 'relation':
        this.#relations.set(msg.relationId, relationInfo(msg, this.oids, this.registry))
        // A spilled transaction's changes are decoded later: they need the relation as it was here.
        this.#spill?.append(0, payload, false)
        return
      case 'insert':
      case 'update':
      case 'delete':
        this.#push(this.#rowChange(msg))
        return
      case 'truncate':
        this.#push(this.#truncate(msg))
        return
      case 'commit': {
        const changes = this.#current ?? []
        this.#current = null
        const txn: WalTransaction = { endLsn: msg.endLsn, changes, xid: this.#xid, commitTime: msg.commitTime }
        if (this.#spill) {
          this.#spill.seal(this.#replayDecoder(false))
          txn.spill = this.#spill
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
      this.#spill = new SpillFile(this.spillDir(), this.#xid ?? 0, false, cur)
      this.#current = []
    }
  }

  /** A data message inside a stream block: recorded as is (relation messages are also kept for the commit). */
  #streamed(xid: number, payload: Buffer): void {
    const open = this.#open(xid)
    const tag = payload[0] as number
    if (tag === RELATION) {
      try {
        open.relations.push(decodePgoutput(payload, true) as RelationMessage)
      } catch (err) {
        this.events.skipped(err as Error)
        return
      }
    }
    open.spill.append(payload.readUInt32BE(1), payload, ROW_TAGS.has(tag))
  }

  #open(xid: number): OpenStream {
    let open = this.#streams.get(xid)
    if (!open) {
      open = { spill: new SpillFile(this.spillDir(), xid, true), relations: [] }
      this.#streams.set(xid, open)
    }
    return open
  }

  #stream(msg: Extract<PgoutputMessage, { tag: `stream_${string}` }>): void {
    switch (msg.tag) {
      case 'stream_start':
        this.#streamXid = msg.xid
        this.#open(msg.xid)
        return
      case 'stream_stop':
        this.#streamXid = null
        return
      case 'stream_abort': {
        const open = this.#streams.get(msg.xid)
        if (msg.subxid !== msg.xid) open?.spill.abortSubtransaction(msg.subxid)
        else if (open) {
          this.events.aborted?.(msg.xid, open.spill.bytes)
          open.spill.dispose()
          this.#streams.delete(msg.xid)
        }
        return
      }
      case 'stream_commit': {
        const open = this.#streams.get(msg.xid)
        this.#streams.delete(msg.xid)
        const txn: WalTransaction = { endLsn: msg.endLsn, changes: [], xid: msg.xid, commitTime: msg.commitTime }
        if (open) {
          open.spill.seal(this.#replayDecoder(true))
          // The server counts a relation described inside a committed stream as described for what follows.
          for (const rel of open.relations) this.#relations.set(rel.relationId, this.#info(rel))
          txn.spill = open.spill
        }
        this.events.commit(txn)
      }
    }
  }

  /**
   * Decodes a committed stream's recorded messages when the writer reads them: its own relation messages first
   * (in order), the session's relation map for the rest.
   */
  #replayDecoder(inStream: boolean): SpillDecoder {
    const own = new Map<number, RelationInfo>()
    const lookup = (id: number) => own.get(id) ?? this.#relations.get(id)
    return (payload) => {
      let msg: PgoutputMessage
      try {
        msg = decodePgoutput(payload, inStream)
      } catch (err) {
        this.events.skipped(err as Error)
        return null
      }
      if (msg.tag === 'relation') own.set(msg.relationId, this.#info(msg))
      else if (msg.tag === 'insert' || msg.tag === 'update' || msg.tag === 'delete') return this.#rowChange(msg, lookup)
      else if (msg.tag === 'truncate') return this.#truncate(msg, lookup)
      return null
    }
  }

  #info(rel: RelationMessage): RelationInfo {
    return relationInfo(rel, this.oids, this.registry)
  }

  #rowChange(msg: RowMessage, lookup = (id: number) => this.#relations.get(id)): RowChange | null {
    const info = lookup(msg.relationId)
    if (!info?.table) return null
    const change = rowChange(msg, info, info.table)
    if (!change) this.events.skipped(null, info.table.tableName)
    return change
  }

  #truncate(
    msg: Extract<PgoutputMessage, { tag: 'truncate' }>,
    lookup = (id: number) => this.#relations.get(id),
  ): Change | null {
    const tables = msg.relationIds
      .map((id) => lookup(id)?.table ?? this.oids.get(id))
      .filter((t): t is ResolvedTable => t !== undefined && t !== null)
    return tables.length > 0 ? { kind: 'truncate', tables } : null
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

type RowMessage = Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>

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
