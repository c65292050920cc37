import { createHash } from 'node:crypto'
import type { LogicalType, SchemaColumn, SchemaTable, TableMeta } from '@synchro/protocol'
import type pg from 'pg'
import { SchemaContractError } from '../errors.js'
import type { ResolvedTable } from '../registry/registry.js'
import { type DdlWatch, epochExpr } from './ddl-watch.js'
import { defaultKind, logicalTypeOf, sqliteDefault } from './types.js'

/** Advisory lock key under which manifest versions are assigned (§2.2.4). */
export const MANIFEST_LOCK = 91110042

/** The schema contract at one moment: served by /sync/schema and checked on every POST. */
export interface SchemaContract {
  version: number
  hash: string
  tables: SchemaTable[]
  /** Column facts per registered table name, for push/pull (only synced columns). */
  columns: Map<string, SchemaColumn[]>
  /** Every catalog column per registered table (including non-synced ones): name → type as format_type prints it. */
  allColumns: Map<string, Map<string, string>>
}

interface CatalogRow {
  name: string
  ord: string
  oid: number | null
  attname: string | null
  db_type: string | null
  nullable: boolean | null
  default_sql: string | null
  typtype: string | null
  base_type: string | null
  base_typtype: string | null
  pk: string[] | null
}

const CATALOG_SQL = `
WITH t AS (
  SELECT u.name, u.ord, to_regclass(u.qname)::oid AS oid
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(name, qname, ord)
), pk AS (
  SELECT i.indrelid, array_agg(a.attname::text ORDER BY k.ord) AS cols, count(*) OVER (PARTITION BY i.indrelid) AS n
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indisprimary AND i.indrelid IN (SELECT oid FROM t WHERE oid IS NOT NULL)
  GROUP BY i.indrelid
)
SELECT t.name, t.ord::text, t.oid::int AS oid, a.attname::text, format_type(a.atttypid, a.atttypmod) AS db_type,
       NOT a.attnotnull AS nullable, pg_get_expr(d.adbin, d.adrelid) AS default_sql,
       ty.typtype::text, format_type(ty.typbasetype, ty.typtypmod) AS base_type, bt.typtype::text AS base_typtype,
       pk.cols AS pk
FROM t
LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_type bt ON bt.oid = ty.typbasetype
LEFT JOIN pk ON pk.indrelid = t.oid
ORDER BY t.ord, a.attnum`

/**
 * A cheap fingerprint of the catalog rows the contract depends on (Decision 12): any DDL on a registered table
 * changes the xmin of its pg_class / pg_attribute / pg_attrdef / pg_index rows. A scalar SQL expression over the
 * registered tables' SQL names in parameter `param` (text[]), so a request can fold the check into the first
 * statement it runs anyway (`SchemaContractCache.fingerprintSql`).
 */
function fingerprintExpr(param: string): string {
  // The oids travel as arrays (`= ANY(array)`), not `IN (subquery)`: the catalogs are then read through their oid /
  // relid indexes instead of being scanned whole (0.72 → 0.32 ms per request here; more in databases with many tables).
  return `(WITH t AS (SELECT to_regclass(q)::oid AS oid, q FROM unnest(${param}::text[]) AS q),
  o AS (SELECT array_agg(oid) AS oids FROM t),
  y AS (SELECT array_agg(DISTINCT a.atttypid) AS oids FROM pg_attribute a
         WHERE a.attrelid = ANY((SELECT oids FROM o)::oid[]) AND a.attnum > 0)
SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
  SELECT t.q || '=' || coalesce(t.oid::text, 'missing') AS x FROM t
  UNION ALL SELECT 'c' || c.oid || ':' || c.xmin FROM pg_class c WHERE c.oid = ANY((SELECT oids FROM o)::oid[])
  UNION ALL SELECT 'a' || a.attrelid || '.' || a.attnum || ':' || a.xmin FROM pg_attribute a
    WHERE a.attrelid = ANY((SELECT oids FROM o)::oid[]) AND a.attnum > 0
  UNION ALL SELECT 'd' || d.oid || ':' || d.xmin FROM pg_attrdef d WHERE d.adrelid = ANY((SELECT oids FROM o)::oid[])
  UNION ALL SELECT 'i' || i.indexrelid || ':' || i.xmin FROM pg_index i
    WHERE i.indrelid = ANY((SELECT oids FROM o)::oid[])
  UNION ALL SELECT 'y' || y.oid || ':' || y.xmin FROM pg_type y WHERE y.oid = ANY((SELECT oids FROM y)::oid[])
) s)`
}

/** Go's json.Marshal escapes <, >, & and U+2028/2029; the hash must match the reference byte for byte. */
export function goJson(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll('<', '\\u003c')
    .replaceAll('>', '\\u003e')
    .replaceAll('&', '\\u0026')
    .replaceAll('\u2028', '\\u2028')
    .replaceAll('\u2029', '\\u2029')
}

/** Lower-case hex SHA-256 of `{"tables":[…]}` (§2.2.3). */
export function schemaHash(tables: SchemaTable[]): string {
  return createHash('sha256').update(goJson({ tables })).digest('hex')
}

/** Builds the sorted SchemaTable list from the catalog. Throws SchemaContractError for unsupported tables. */
export async function buildSchemaTables(
  db: pg.Pool | pg.PoolClient,
  tables: readonly ResolvedTable[],
): Promise<{
  tables: SchemaTable[]
  columns: Map<string, SchemaColumn[]>
  allColumns: Map<string, Map<string, string>>
}> {
  const { rows } = await db.query<CatalogRow>(CATALOG_SQL, [
    tables.map((t) => t.tableName),
    tables.map((t) => t.sqlName),
  ])
  const byTable = new Map<string, CatalogRow[]>()
  for (const r of rows) {
    const list = byTable.get(r.name) ?? []
    list.push(r)
    byTable.set(r.name, list)
  }
  const out: SchemaTable[] = []
  const columnsByTable = new Map<string, SchemaColumn[]>()
  const allColumns = new Map<string, Map<string, string>>()
  for (const t of tables) {
    const catalog = byTable.get(t.tableName) ?? []
    const first = catalog[0]
    if (!first || first.oid === null) throw new SchemaContractError(`table ${t.tableName} does not exist`)
    const pk = first.pk ?? []
    if (pk.length === 0) throw new SchemaContractError(`table ${t.tableName} has no primary key`)
    if (pk.length > 1) throw new SchemaContractError(`table ${t.tableName} has a composite primary key`)
    const columns: SchemaColumn[] = []
    const names = new Map<string, string>()
    for (const r of catalog) {
      if (r.attname === null || r.db_type === null) continue
      names.set(r.attname, r.db_type)
      if (t.syncColumns && !t.syncColumns.includes(r.attname)) continue
      const logical = resolveLogical(r)
      if (!logical)
        throw new SchemaContractError(`table ${t.tableName} column ${r.attname}: unsupported type ${r.db_type}`)
      const isPk = pk.includes(r.attname)
      const kind = defaultKind(r.default_sql)
      if (
        t.pushPolicy === 'owner_only' &&
        kind === 'server_only' &&
        r.nullable === false &&
        !isPk &&
        !t.protectedSet.has(r.attname)
      ) {
        throw new SchemaContractError(
          `table ${t.tableName} column ${r.attname}: NOT NULL with a server-only default on a push-enabled table`,
        )
      }
      // Key order is part of the hash: name, db_type, logical_type, nullable, default_sql?, default_kind, sqlite?, pk.
      const col: Record<string, unknown> = {
        name: r.attname,
        db_type: r.db_type,
        logical_type: logical,
        nullable: r.nullable ?? true,
      }
      if (r.default_sql !== null && r.default_sql.trim() !== '') col.default_sql = r.default_sql
      col.default_kind = kind
      const sqlite = sqliteDefault(r.default_sql)
      if (sqlite !== undefined) col.sqlite_default_sql = sqlite
      col.is_primary_key = isPk
      columns.push(col as unknown as SchemaColumn)
    }
    allColumns.set(t.tableName, names)
    columnsByTable.set(t.tableName, columns)
    out.push(schemaTableOf(t, pk, columns))
  }
  out.sort((a, b) => (a.table_name < b.table_name ? -1 : a.table_name > b.table_name ? 1 : 0))
  return { tables: out, columns: columnsByTable, allColumns }
}

function resolveLogical(r: CatalogRow): LogicalType | undefined {
  if (r.db_type === null) return undefined
  const direct = logicalTypeOf(r.db_type)
  if (direct) return direct
  if (r.typtype === 'e') return 'string'
  if (r.typtype === 'd' && r.base_type) {
    if (r.base_typtype === 'e') return 'string'
    return logicalTypeOf(r.base_type)
  }
  return undefined
}

/** SchemaTable with the key order and omission rules of §1.5 (the hash depends on them). */
function schemaTableOf(t: ResolvedTable, pk: string[], columns: SchemaColumn[]): SchemaTable {
  const s: Partial<SchemaTable> & Record<string, unknown> = { table_name: t.tableName, push_policy: t.pushPolicy }
  if (t.parentTable) s.parent_table = t.parentTable
  if (t.parentFkColumn) s.parent_fk_col = t.parentFkColumn
  if (t.dependencies.length > 0) s.dependencies = [...t.dependencies]
  s.updated_at_column = t.updatedAtColumn
  s.deleted_at_column = t.deletedAtColumn
  s.primary_key = pk
  if (t.bucketByColumn) s.bucket_by_column = t.bucketByColumn
  if (t.bucketPrefix) s.bucket_prefix = t.bucketPrefix
  if (t.globalWhenBucketNull) s.global_when_bucket_null = true
  if (t.allowGlobalRead) s.allow_global_read = true
  if (t.bucketFunction) s.bucket_function = t.bucketFunction
  s.columns = columns
  return s as SchemaTable
}

/** TableMeta for GET /sync/tables (sorted by name; dependencies always present). */
export function tableMetaOf(t: ResolvedTable): TableMeta {
  const m: TableMeta = { table_name: t.tableName, push_policy: t.pushPolicy, dependencies: [...t.dependencies] }
  if (t.parentTable) m.parent_table = t.parentTable
  if (t.parentFkColumn) m.parent_fk_col = t.parentFkColumn
  m.updated_at_column = t.updatedAtColumn
  m.deleted_at_column = t.deletedAtColumn
  if (t.bucketByColumn) m.bucket_by_column = t.bucketByColumn
  if (t.bucketPrefix) m.bucket_prefix = t.bucketPrefix
  if (t.globalWhenBucketNull) m.global_when_bucket_null = true
  if (t.allowGlobalRead) m.allow_global_read = true
  if (t.bucketFunction) m.bucket_function = t.bucketFunction
  return m
}

/** Looks up (or assigns) the manifest version of a hash under the advisory lock (§2.2.4). */
export async function manifestVersion(pool: pg.Pool, hash: string): Promise<number> {
  const found = await pool.query<{ v: string }>(
    'SELECT schema_version::text AS v FROM sync_schema_manifest WHERE schema_hash = $1',
    [hash],
  )
  if (found.rows[0]) return Number(found.rows[0].v)
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [MANIFEST_LOCK])
    const { rows } = await client.query<{ v: string }>(
      `WITH existing AS (SELECT schema_version FROM sync_schema_manifest WHERE schema_hash = $1),
            ins AS (
              INSERT INTO sync_schema_manifest (schema_version, schema_hash)
              SELECT m.v, $1 FROM (SELECT coalesce(max(schema_version), 0) + 1 AS v FROM sync_schema_manifest) m
              WHERE NOT EXISTS (SELECT 1 FROM existing)
              RETURNING schema_version)
       SELECT schema_version::text AS v FROM existing UNION ALL SELECT schema_version::text FROM ins`,
      [hash],
    )
    await client.query('COMMIT')
    return Number(rows[0]?.v)
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}

/**
 * Caches the contract and rebuilds it only when the catalog fingerprint changes (Decision 12). What a request reads
 * to check it is the *token*: with a DDL watch (schema/ddl-watch.ts) the DDL epoch, one small table; without one the
 * catalog fingerprint itself. A new epoch costs one catalog read (epoch and fingerprint in one statement, so the pair
 * is consistent); the contract is rebuilt only when the fingerprint changed too.
 */
export class SchemaContractCache {
  #current: { token: string | null; fp: string; contract: SchemaContract } | undefined
  #resolving: Promise<SchemaContract> | undefined
  #resolvingToken: string | null | undefined
  #fingerprintParam: string[] | undefined
  #watch: DdlWatch | undefined
  readonly #versions = new Map<string, number>()

  constructor(
    private readonly pool: pg.Pool,
    private readonly tables: readonly ResolvedTable[],
  ) {}

  /**
   * Trusts `watch` from now on (the engine sets it once at start, before serving). Statements built before keep
   * reading the catalog fingerprint: still correct, and they never match an epoch token.
   */
  useDdlWatch(watch: DdlWatch | undefined): void {
    this.#watch = watch
  }

  /** Whether requests read the DDL epoch (true) or the catalog fingerprint (false). */
  get watchingDdl(): boolean {
    return this.#watch !== undefined
  }

  /** The current contract (token-checked). */
  async get(): Promise<SchemaContract> {
    const { rows } = await this.pool.query<{ fp: string | null }>(`SELECT ${this.fingerprintSql('$1')} AS fp`, [
      this.fingerprintParam(),
    ])
    return this.forFingerprint(rows[0]?.fp ?? null)
  }

  /**
   * SQL expression (text) computing the token, for callers that fold the check into a statement they run anyway
   * (one round trip less per request). Bind `fingerprintParam()` to `param`, then pass the value to
   * `forFingerprint`. The check is as fresh as with `get()`: the statement runs after the request arrived.
   */
  fingerprintSql(param: string): string {
    return this.#watch ? epochExpr(param, this.#watch) : fingerprintExpr(param)
  }

  /** The value to bind to the parameter of `fingerprintSql`. */
  fingerprintParam(): string[] {
    this.#fingerprintParam ??= this.tables.map((t) => t.sqlName)
    return this.#fingerprintParam
  }

  /**
   * SQL expression (text): the catalog fingerprint itself, for a request whose token read NULL (the DDL watch stopped
   * firing): it reads this next, in its own transaction, and passes it as its token. Bind `fingerprintParam()`.
   */
  catalogFingerprintSql(param: string): string {
    return fingerprintExpr(param)
  }

  /**
   * The cached contract when it was built for (or checked at) token `fp` — an epoch, or a catalog fingerprint read
   * after the request arrived — without touching the database.
   */
  cachedFor(fp: string | null): SchemaContract | undefined {
    const current = this.#current
    return fp && current && (current.token === fp || current.fp === fp) ? current.contract : undefined
  }

  /**
   * The contract for a token just read by a request: the cached one, or — when the token is new — the one the
   * catalog now describes (rebuilt only if its fingerprint changed). A catalog fingerprint is taken as read (see
   * `catalogFingerprintSql`). A NULL or empty token (the DDL watch stopped firing, see ddl-watch.ts) is never cached.
   */
  async forFingerprint(fp: string | null): Promise<SchemaContract> {
    const cached = this.cachedFor(fp)
    if (cached) return cached
    if (this.#resolving && this.#resolvingToken === fp && fp) return this.#resolving
    const resolving = this.#resolve(fp)
    this.#resolving = resolving
    this.#resolvingToken = fp
    try {
      return await resolving
    } finally {
      if (this.#resolving === resolving) {
        this.#resolving = undefined
        this.#resolvingToken = undefined
      }
    }
  }

  /** The last contract built, without touching the database (for answers during an outage). */
  cached(): SchemaContract | undefined {
    return this.#current?.contract
  }

  /** The catalog fingerprint (and, with a watch, the epoch read in the same snapshot), then the contract for it. */
  async #resolve(token: string | null): Promise<SchemaContract> {
    let fp = token ?? ''
    if (this.#watch && (token === null || token === '' || token.startsWith('ddl '))) {
      const { rows } = await this.pool.query<{ token: string | null; fp: string }>(
        `SELECT ${epochExpr('$1', this.#watch)} AS token, ${fingerprintExpr('$1')} AS fp`,
        [this.fingerprintParam()],
      )
      fp = rows[0]?.fp ?? ''
      token = rows[0]?.token ?? null
    }
    const current = this.#current
    if (current && current.fp === fp) {
      current.token = token // same schema, new epoch (DDL elsewhere): the same contract, checked at the new token
      return current.contract
    }
    const built = await buildSchemaTables(this.pool, this.tables)
    const hash = schemaHash(built.tables)
    let version = this.#versions.get(hash)
    if (version === undefined) {
      version = await manifestVersion(this.pool, hash)
      this.#versions.set(hash, version)
    }
    const contract: SchemaContract = { version, hash, ...built }
    this.#current = { token, fp, contract }
    return contract
  }
}
