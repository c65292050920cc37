import type { TextRow } from '../buckets/resolver.js'
import type { Change, RowChange } from '../changelog/changes.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import {
  type ColumnMask,
  decodePgoutput,
  type PgoutputMessage,
  type RelationMessage,
  type TupleValue,
  UNCHANGED,
} from './pgoutput.js'
import { needsWholeRow, type Projection, projection } from './projection.js'
import type { SpillDecoder } from './spill.js'

/** json and jsonb type OIDs: their text is JSON, handed to bucket functions as JSON values. */
const JSON_OIDS = new Set([114, 3802])

export interface RelationInfo {
  table: ResolvedTable | null
  rel: RelationMessage
  jsonColumns: Set<string>
  /** The columns decoded of its row changes (null: all). */
  projection: Projection | null
}

type Lookup = (id: number) => RelationInfo | undefined

/**
 * The session's relation map (the server describes each table before its first change, and again after it changes)
 * and the decoding of row messages against it: row changes of registered tables, truncates, and the replay of a
 * spilled transaction's recorded messages.
 */
export class Relations {
  readonly #byId = new Map<number, RelationInfo>()
  readonly #oids: Map<number, ResolvedTable>
  readonly #registry: Registry
  readonly #events: { skipped(err: Error | null, table?: string): void }
  readonly #globalFunction: string | undefined
  readonly #lookup: Lookup = (id) => this.#byId.get(id)
  readonly #columns: ColumnMask = Relations.#mask(this.#lookup)

  constructor(
    oids: Map<number, ResolvedTable>,
    registry: Registry,
    events: { skipped(err: Error | null, table?: string): void },
    /** The consumer's global bucket function (tables using it decode every column). */
    globalFunction?: string,
  ) {
    this.#oids = oids
    this.#registry = registry
    this.#events = events
    this.#globalFunction = globalFunction
  }

  /** The columns to decode of each relation's row messages. */
  static #mask(lookup: Lookup): ColumnMask {
    return (id) => lookup(id)?.projection?.keep ?? null
  }

  /** Decodes one message; row changes of registered tables only in the columns capture reads (see projection.ts). */
  decode(payload: Buffer, inStream = false, columns = this.#columns): PgoutputMessage {
    return decodePgoutput(payload, inStream, columns)
  }

  /** A relation message: the table as described from here on. */
  describe(rel: RelationMessage): void {
    this.#byId.set(rel.relationId, this.#info(rel))
  }

  /**
   * Decodes a spilled transaction's recorded messages when the writer reads them: its own relation messages first
   * (in order), for the rest the session's relation map as it is now, where the records begin (a stream: at its
   * commit, its own relations counted). The writer reads them later: a relation message received meanwhile (a table
   * altered since) describes later messages, not these.
   */
  replayDecoder(inStream: boolean): SpillDecoder {
    const own = new Map<number, RelationInfo>()
    const before = new Map(this.#byId)
    const lookup = (id: number) => own.get(id) ?? before.get(id)
    const columns = Relations.#mask(lookup)
    return (payload) => {
      let msg: PgoutputMessage
      try {
        msg = this.decode(payload, inStream, columns)
      } catch (err) {
        this.#events.skipped(err as Error)
        return null
      }
      if (msg.tag === 'relation') own.set(msg.relationId, this.#info(msg))
      else if (msg.tag === 'insert' || msg.tag === 'update' || msg.tag === 'delete') {
        return this.rowChange(msg, payload, inStream, lookup)
      } else if (msg.tag === 'truncate') return this.truncate(msg, lookup)
      return null
    }
  }

  #info(rel: RelationMessage): RelationInfo {
    return relationInfo(rel, this.#oids, this.#registry, this.#globalFunction)
  }

  /** The change of a row message decoded by {@link decode} from `payload` (decoded again whole when needed). */
  rowChange(msg: RowMessage, payload: Buffer, inStream = false, lookup = this.#lookup): RowChange | null {
    const info = lookup(msg.relationId)
    if (!info?.table) return null
    let change = rowChange(msg, info, info.table)
    const p = info.projection
    if (change && p && needsWholeRow(change, p)) {
      change = rowChange(decodePgoutput(payload, inStream) as RowMessage, info, info.table)
    }
    if (!change) this.#events.skipped(null, info.table.tableName)
    return change
  }

  truncate(
    msg: Extract<PgoutputMessage, { tag: 'truncate' }>,
    lookup = (id: number) => this.#byId.get(id),
  ): Change | null {
    const tables = msg.relationIds
      .map((id) => lookup(id)?.table ?? this.#oids.get(id))
      .filter((t): t is ResolvedTable => t !== undefined && t !== null)
    return tables.length > 0 ? { kind: 'truncate', tables } : null
  }
}

function relationInfo(
  rel: RelationMessage,
  oids: Map<number, ResolvedTable>,
  registry: Registry,
  globalFunction: string | undefined,
): RelationInfo {
  // By OID first (exact, follows search_path); by name for a table recreated since the session started.
  const table =
    oids.get(rel.relationId) ??
    registry.get(`${rel.namespace}.${rel.name}`) ??
    (rel.namespace === 'public' ? registry.get(rel.name) : undefined) ??
    null
  const jsonColumns = new Set(rel.columns.filter((c) => JSON_OIDS.has(c.typeOid)).map((c) => c.name))
  return { table, rel, jsonColumns, projection: table ? projection(registry, table, rel, globalFunction) : null }
}

export type RowMessage = Extract<PgoutputMessage, { tag: 'insert' | 'update' | 'delete' }>

/** Builds a RowChange; unchanged-TOAST values are taken from the old row (REPLICA IDENTITY FULL) or re-read later. */
function rowChange(msg: RowMessage, info: RelationInfo, table: ResolvedTable): RowChange | null {
  const cols = info.rel.columns
  let row: TextRow
  let oldRow: TextRow | null = null
  let missing: string[] | null = null
  if (msg.tag === 'insert') row = toRow(cols, msg.newTuple, null, null)
  else if (msg.tag === 'update') {
    // Only updates carry "unchanged TOAST" markers (rarely: the list is only made when one is there).
    if (msg.newTuple.includes(UNCHANGED)) missing = []
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
    let v = tuple[i] as TupleValue | undefined
    // Not decoded (projection).
    if (v === undefined) continue
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
