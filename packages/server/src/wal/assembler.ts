import type { TextRow } from '../buckets/resolver.js'
import type { Change, RowChange, WalTransaction } from '../changelog/changes.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { decodePgoutput, type PgoutputMessage, type RelationMessage, type TupleValue, UNCHANGED } from './pgoutput.js'

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
  /** A message that cannot be decoded (logged and skipped) or a row change without its id. */
  skipped(err: Error | null, table?: string): void
}

/**
 * Turns pgoutput messages into committed source transactions of registered tables: keeps the relation map (the
 * server describes each table before its first change, and again after it changes) and the transaction in progress.
 */
export class TransactionAssembler {
  readonly #relations = new Map<number, RelationInfo>()
  #current: Change[] | null = null
  #xid: number | undefined

  constructor(
    readonly oids: Map<number, ResolvedTable>,
    readonly registry: Registry,
    readonly events: AssemblerEvents,
  ) {}

  /** A transaction is being received (its changes are not handed over yet). */
  get inTransaction(): boolean {
    return this.#current !== null
  }

  /** One XLogData payload. */
  onMessage(payload: Buffer): void {
    let msg: PgoutputMessage
    try {
      msg = decodePgoutput(payload)
    } catch (err) {
      // A message we cannot decode is logged and skipped.
      this.events.skipped(err as Error)
      return
    }
    switch (msg.tag) {
      case 'begin':
        this.#current = []
        this.#xid = msg.xid
        return
      case 'relation':
        this.#relations.set(msg.relationId, relationInfo(msg, this.oids, this.registry))
        return
      case 'insert':
      case 'update':
      case 'delete': {
        const c = this.#rowChange(msg)
        if (c && this.#current) this.#current.push(c)
        return
      }
      case 'truncate': {
        const c = this.#truncate(msg)
        if (c && this.#current) this.#current.push(c)
        return
      }
      case 'commit': {
        const changes = this.#current ?? []
        this.#current = null
        this.events.commit({ endLsn: msg.endLsn, changes, xid: this.#xid, commitTime: msg.commitTime })
        return
      }
      default:
        return
    }
  }

  #rowChange(msg: RowMessage): RowChange | null {
    const info = this.#relations.get(msg.relationId)
    if (!info?.table) return null
    const change = rowChange(msg, info, info.table)
    if (!change) this.events.skipped(null, info.table.tableName)
    return change
  }

  #truncate(msg: Extract<PgoutputMessage, { tag: 'truncate' }>): Change | null {
    const tables = msg.relationIds
      .map((id) => this.#relations.get(id)?.table ?? this.oids.get(id))
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
