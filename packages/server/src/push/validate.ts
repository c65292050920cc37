import type { PushRecord } from '@synchro/protocol'
import { nestedDeeperThan } from '../limits/limits.js'
import { dataTextSql } from '../pull/rows.js'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { SchemaContract } from '../schema/contract.js'
import { INVALID_DATA, type RecordFailure } from './errors.js'
import { canonicalId, type IdKind, idKindOf } from './ids.js'

/** What push needs to know about one registered table under the current contract. */
export interface TableInfo {
  t: ResolvedTable
  idKind: IdKind
  idType: string
  /** Synced catalog columns: what `server_version.data` may contain (Decision 14) and what clients may send. */
  synced: ReadonlySet<string>
  /** Keys of `data` written on create (synced, not protected except id / owner / parent FK). */
  createCols: ReadonlySet<string>
  /** Keys of `data` written on update and resurrection (synced, not protected). */
  updateCols: ReadonlySet<string>
  /**
   * The synced columns of the written row (alias `t`) as JSON text, rendered as pull renders them (`dataTextSql`:
   * `to_json`'s bytes, assembled by concatenation — ≈ 0.4 ms less PostgreSQL time per 100 rows than `to_jsonb`).
   */
  dataSql: string
}

/** A record that passed the table / policy / operation / data checks. */
export interface Item {
  index: number
  rec: PushRecord
  op: 'create' | 'update' | 'delete'
  info: TableInfo
  /** Canonical id (PostgreSQL's rendering). */
  key: string
  data: { [column: string]: unknown } | undefined
}

const infoCache = new WeakMap<SchemaContract, Map<string, TableInfo>>()

export function tableInfo(contract: SchemaContract, t: ResolvedTable): TableInfo {
  let byTable = infoCache.get(contract)
  if (!byTable) {
    byTable = new Map()
    infoCache.set(contract, byTable)
  }
  let info = byTable.get(t.tableName)
  if (info) return info
  const columns = contract.columns.get(t.tableName) ?? []
  const synced = new Set(columns.map((c) => c.name))
  const idType = columns.find((c) => c.name === t.idColumn)?.db_type ?? 'text'
  const createCols = new Set<string>()
  const updateCols = new Set<string>()
  for (const c of synced) {
    if (!t.protectedSet.has(c)) {
      createCols.add(c)
      updateCols.add(c)
    } else if (t.insertAllowedProtected.has(c)) {
      createCols.add(c)
    }
  }
  info = {
    t,
    idKind: idKindOf(idType),
    idType,
    synced,
    createCols,
    updateCols,
    dataSql: dataTextSql(t, contract, 't'),
  }
  byTable.set(t.tableName, info)
  return info
}

export function isObject(v: unknown): v is { [k: string]: unknown } {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Checks one pushed record, in the order table → pushability → operation → data → id (§3 F 73, Decision 4).
 * Returns the record ready to be decided, or the failure that answers it. No database access.
 */
export function validateRecord(
  registry: Registry,
  contract: SchemaContract,
  maxJsonDepth: number,
  index: number,
  rec: PushRecord,
): Item | RecordFailure {
  const t = registry.get(rec.table_name)
  if (!t) {
    return { status: 'rejected_terminal', reasonCode: 'table_not_registered', message: 'table not registered for sync' }
  }
  if (t.pushPolicy !== 'owner_only') {
    return { status: 'rejected_terminal', reasonCode: 'table_read_only', message: 'table is read-only' }
  }
  const op = rec.operation
  if (op !== 'create' && op !== 'update' && op !== 'delete') {
    return { status: 'rejected_terminal', reasonCode: 'invalid_operation', message: `unknown operation: ${op}` }
  }
  if (op !== 'delete' && !isObject(rec.data)) return INVALID_DATA
  // Bounded nesting: deeper values could be stored but not rendered back (stack overflow serialising a page).
  if (op !== 'delete' && nestedDeeperThan(rec.data, maxJsonDepth)) {
    return { ...INVALID_DATA, message: 'data nested too deeply' }
  }
  const info = tableInfo(contract, t)
  const key = canonicalId(rec.id, info.idKind, info.idType)
  if (key === undefined) return { ...INVALID_DATA, message: 'invalid record id' }
  return { index, rec, op, info, key, data: isObject(rec.data) ? rec.data : undefined }
}

export function isItem(v: Item | RecordFailure): v is Item {
  return 'key' in v
}
