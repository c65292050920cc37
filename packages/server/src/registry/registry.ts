import type { PushPolicy } from '@synchro/protocol'
import { SynchroError } from '../errors.js'
import { quoteIdent, quoteTable } from '../util/sql.js'

/** How one table syncs. Only `tableName` is required; the rest has the defaults of PROTOCOL.md §2.5. */
export interface TableConfig {
  /** Table name, optionally schema-qualified (`app.orders`). */
  tableName: string
  pushPolicy?: PushPolicy
  /** Column holding the owning user's id; rows are private to that user. */
  ownerColumn?: string
  /** Parent table (registered) whose owner owns this table's rows. */
  parentTable?: string
  /** FK column of this table pointing at the parent's id column. */
  parentFkColumn?: string
  /** Only these columns leave the server (the id, updated-at and deleted-at columns are always added). */
  syncColumns?: string[]
  /** Tables a client should apply before this one (informational, sorted in the schema). */
  dependencies?: string[]
  idColumn?: string
  updatedAtColumn?: string
  deletedAtColumn?: string
  /** Extra columns clients may never write. */
  protectedColumns?: string[]
  /** Column whose value names the row's bucket (`<bucketPrefix><value>`). */
  bucketByColumn?: string
  bucketPrefix?: string
  /** A NULL bucket column puts the row in `global` (requires allowGlobalRead). */
  globalWhenBucketNull?: boolean
  /** Rows with a NULL owner are readable by everyone. */
  allowGlobalRead?: boolean
  /** SQL function `fn(table text, op text, new_row jsonb, old_row jsonb) returns setof text` naming buckets. */
  bucketFunction?: string
}

/** A registered table with every default applied. */
export interface ResolvedTable {
  tableName: string
  /** Quoted, possibly schema-qualified, ready for SQL. */
  sqlName: string
  /** Registration index (snapshot order). */
  index: number
  pushPolicy: PushPolicy
  ownerColumn: string | undefined
  parentTable: string | undefined
  parentFkColumn: string | undefined
  syncColumns: string[] | undefined
  dependencies: string[]
  idColumn: string
  updatedAtColumn: string
  deletedAtColumn: string
  protectedColumns: string[]
  bucketByColumn: string | undefined
  bucketPrefix: string | undefined
  globalWhenBucketNull: boolean
  allowGlobalRead: boolean
  bucketFunction: string | undefined
  /** Never client-writable on update (§2.5). */
  protectedSet: ReadonlySet<string>
  /** Of protectedSet, the ones allowed on insert (id, owner, parent FK). */
  insertAllowedProtected: ReadonlySet<string>
  q: { id: string; updatedAt: string; deletedAt: string; owner: string | undefined; parentFk: string | undefined }
}

export type RegistryErrorCode =
  | 'invalid_push_policy'
  | 'invalid_bucket_config'
  | 'redundant_protected_column'
  | 'unregistered_parent'
  | 'missing_parent_fk'
  | 'parent_cycle'
  | 'orphaned_chain'
  | 'missing_ownership_path'
  | 'duplicate_table'
  | 'invalid_table_config'
  | 'empty_registry'

/** A registry validation failure; `code` says which rule, `table` which table. */
export class RegistryError extends SynchroError {
  constructor(
    override readonly code: RegistryErrorCode,
    readonly table: string,
    message: string,
  ) {
    super(code, `registry: table ${JSON.stringify(table)}: ${message}`)
  }
}

const FUNCTION_NAME_RE = /^[A-Za-z_][A-Za-z0-9_.]*$/
const TIMESTAMP_COLUMNS = ['created_at', 'updated_at', 'deleted_at']

/** The set of tables that sync. Validated as a whole by `validate()` (engine construction calls it). */
export class Registry {
  readonly #configs: TableConfig[] = []
  #resolved: ResolvedTable[] | undefined
  #byName = new Map<string, ResolvedTable>()

  /** Adds a table. Errors surface at `validate()` so tables can be registered in any order. */
  register(config: TableConfig): this {
    if (this.#resolved) throw new Error('registry is frozen: it is already in use by an engine')
    this.#configs.push({ ...config })
    return this
  }

  /** Applies defaults and checks every rule of PROTOCOL.md §3 K; the first error (registration order) throws. */
  validate(): ResolvedTable[] {
    if (this.#resolved) return this.#resolved
    const resolved = this.#configs.map((c, i) => resolve(c, i))
    const byName = new Map<string, ResolvedTable>()
    for (const t of resolved) {
      if (byName.has(t.tableName)) throw new RegistryError('duplicate_table', t.tableName, 'registered twice')
      byName.set(t.tableName, t)
    }
    for (const [i, c] of this.#configs.entries()) {
      const t = resolved[i] as ResolvedTable
      checkTable(c, t, byName)
    }
    this.#resolved = resolved
    this.#byName = byName
    return resolved
  }

  /** Registered tables in registration order (validates on first use). */
  tables(): readonly ResolvedTable[] {
    return this.validate()
  }

  /** Looks up a registered table by its registered name. */
  get(name: string): ResolvedTable | undefined {
    this.validate()
    return this.#byName.get(name)
  }

  /** Walks the parent chain upward, starting at `t`'s parent, ending at the first ancestor with an owner column. */
  ancestors(t: ResolvedTable): ResolvedTable[] {
    const out: ResolvedTable[] = []
    let cur = t
    while (!cur.ownerColumn && !cur.bucketByColumn && cur.parentTable) {
      const p = this.get(cur.parentTable)
      if (!p) break
      out.push(p)
      cur = p
    }
    return out
  }
}

function resolve(c: TableConfig, index: number): ResolvedTable {
  if (typeof c.tableName !== 'string' || c.tableName.trim() === '') {
    throw new RegistryError('invalid_table_config', String(c.tableName), 'tableName is required')
  }
  const idColumn = c.idColumn || 'id'
  const updatedAtColumn = c.updatedAtColumn || 'updated_at'
  const deletedAtColumn = c.deletedAtColumn || 'deleted_at'
  const ownerColumn = c.ownerColumn || undefined
  const parentTable = c.parentTable || undefined
  const pushPolicy = (c.pushPolicy || (ownerColumn || parentTable ? 'owner_only' : 'disabled')) as PushPolicy
  let bucketByColumn = c.bucketByColumn || undefined
  let globalWhenBucketNull = c.globalWhenBucketNull ?? false
  if (!bucketByColumn && !c.bucketFunction && ownerColumn) {
    bucketByColumn = ownerColumn
    if (c.allowGlobalRead) globalWhenBucketNull = true
  }
  const bucketPrefix = bucketByColumn ? c.bucketPrefix || 'user:' : c.bucketPrefix || undefined
  const parentFkColumn = c.parentFkColumn || undefined
  const protectedColumns = [...(c.protectedColumns ?? [])]
  const protectedSet = new Set([...TIMESTAMP_COLUMNS, updatedAtColumn, deletedAtColumn, idColumn, ...protectedColumns])
  const insertAllowed = new Set<string>([idColumn])
  if (ownerColumn) {
    protectedSet.add(ownerColumn)
    insertAllowed.add(ownerColumn)
  }
  if (parentFkColumn) {
    protectedSet.add(parentFkColumn)
    insertAllowed.add(parentFkColumn)
  }
  let syncColumns: string[] | undefined
  if (c.syncColumns && c.syncColumns.length > 0) {
    const set = new Set(c.syncColumns)
    for (const must of [idColumn, updatedAtColumn, deletedAtColumn]) set.add(must)
    syncColumns = [...set]
  }
  return {
    tableName: c.tableName,
    sqlName: quoteTable(c.tableName),
    index,
    pushPolicy,
    ownerColumn,
    parentTable,
    parentFkColumn,
    syncColumns,
    dependencies: [...(c.dependencies ?? [])].sort(),
    idColumn,
    updatedAtColumn,
    deletedAtColumn,
    protectedColumns,
    bucketByColumn,
    bucketPrefix,
    globalWhenBucketNull,
    allowGlobalRead: c.allowGlobalRead ?? false,
    bucketFunction: c.bucketFunction || undefined,
    protectedSet,
    insertAllowedProtected: insertAllowed,
    q: {
      id: quoteIdent(idColumn),
      updatedAt: quoteIdent(updatedAtColumn),
      deletedAt: quoteIdent(deletedAtColumn),
      owner: ownerColumn ? quoteIdent(ownerColumn) : undefined,
      parentFk: parentFkColumn ? quoteIdent(parentFkColumn) : undefined,
    },
  }
}

function checkTable(c: TableConfig, t: ResolvedTable, byName: Map<string, ResolvedTable>): void {
  const name = t.tableName
  if (t.pushPolicy !== 'owner_only' && t.pushPolicy !== 'disabled') {
    throw new RegistryError('invalid_push_policy', name, `invalid push policy ${JSON.stringify(t.pushPolicy)}`)
  }
  if (c.globalWhenBucketNull && !c.allowGlobalRead) {
    throw new RegistryError(
      'invalid_bucket_config',
      name,
      'invalid bucket configuration: globalWhenBucketNull requires allowGlobalRead',
    )
  }
  if (t.bucketFunction && !FUNCTION_NAME_RE.test(t.bucketFunction)) {
    throw new RegistryError('invalid_bucket_config', name, 'invalid bucket configuration: bad bucketFunction name')
  }
  for (const col of t.protectedColumns) {
    if (TIMESTAMP_COLUMNS.includes(col) || col === t.idColumn || col === t.ownerColumn) {
      throw new RegistryError('redundant_protected_column', name, `redundant protected column ${JSON.stringify(col)}`)
    }
  }
  if (t.parentTable) {
    if (!byName.has(t.parentTable)) {
      throw new RegistryError('unregistered_parent', name, `unregistered parent ${JSON.stringify(t.parentTable)}`)
    }
    if (!t.parentFkColumn) throw new RegistryError('missing_parent_fk', name, 'missing parent FK column')
    // Walk up to the root; a cycle or a root without an owner column is an error.
    const seen = new Set<string>([name])
    let cur: ResolvedTable = t
    while (cur.parentTable) {
      const parent = byName.get(cur.parentTable)
      if (!parent)
        throw new RegistryError('unregistered_parent', name, `unregistered parent ${JSON.stringify(cur.parentTable)}`)
      if (seen.has(parent.tableName)) throw new RegistryError('parent_cycle', name, 'cycle detected in parent chain')
      seen.add(parent.tableName)
      cur = parent
    }
    if (!cur.ownerColumn) {
      throw new RegistryError(
        'orphaned_chain',
        name,
        `orphaned chain: root ${JSON.stringify(cur.tableName)} has no owner column`,
      )
    }
  }
  if (t.pushPolicy === 'owner_only' && !t.ownerColumn && !t.parentTable) {
    throw new RegistryError(
      'missing_ownership_path',
      name,
      'missing ownership path: push-enabled table needs an owner column or a parent',
    )
  }
}
