import { parseJsonLossless, stringifyJsonLossless } from '@synchro/protocol'
import type pg from 'pg'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import { quoteIdent, quoteTable } from '../util/sql.js'
import type { ColumnCatalog } from './catalog.js'

/** A row as text values (each column's PostgreSQL text output), SQL NULL as null. */
export type TextRow = Record<string, string | null>

/** The operation passed to SQL bucket functions. */
export type BucketFunctionOp = 'create' | 'update' | 'delete'

/** One record whose buckets are wanted. */
export interface BucketRequest {
  table: ResolvedTable
  op: BucketFunctionOp
  /** The row to resolve from: the new row for create/update, the old row for delete. */
  row: TextRow
  /** The previous row (update/delete), when known. */
  oldRow: TextRow | null
  /** Columns whose text is JSON (json/jsonb): passed to bucket functions as JSON values, not strings. */
  jsonColumns?: ReadonlySet<string>
}

/** Buckets of one record, or why they could not be computed (recorded in sync_rule_failures). */
/** Longest bucket id stored: btree index entries are limited to ~2.7 kB (bucket_id + seq / table + record id). */
export const MAX_BUCKET_ID_BYTES = 2400

/** `set`: the same buckets as a set, when shared (never mutated: an edge state may hold it as a record's edges). */
export type BucketResult = { ok: true; buckets: string[]; set?: ReadonlySet<string> } | { ok: false; error: string }

export const GLOBAL_BUCKET = 'global'

/** How a table's buckets are found. */
export type BucketRule =
  | { kind: 'function'; fn: string }
  | { kind: 'column'; column: string; prefix: string; globalWhenNull: boolean }
  | { kind: 'parent'; chain: ResolvedTable[] }
  | { kind: 'global' }

/** The rule for a table: its own function, else the global one, else its bucket column, parent chain, or `global`. */
export function bucketRule(registry: Registry, t: ResolvedTable, globalFunction?: string): BucketRule {
  const fn = t.bucketFunction ?? globalFunction
  if (fn) return { kind: 'function', fn }
  const col = columnRule(t)
  if (col) return col
  if (t.parentTable) return { kind: 'parent', chain: registry.ancestors(t) }
  return { kind: 'global' }
}

function columnRule(t: ResolvedTable): Extract<BucketRule, { kind: 'column' }> | undefined {
  const column = t.bucketByColumn ?? t.ownerColumn
  if (!column) return undefined
  return { kind: 'column', column, prefix: t.bucketPrefix ?? 'user:', globalWhenNull: t.globalWhenBucketNull }
}

/**
 * Buckets named by a bucket-column value. NULL without `globalWhenBucketNull` means "no bucket": the row syncs to
 * nobody, which is not an error (the reference records nothing either), so no rule failure is written.
 */
export function bucketsFromValue(value: string | null, rule: Extract<BucketRule, { kind: 'column' }>): string[] {
  if (value === null) return rule.globalWhenNull ? [GLOBAL_BUCKET] : []
  return [rule.prefix + value]
}

/** Rules per resolver and table: the registry is frozen once in use, so a table's rule never changes. */
const ruleCache = new WeakMap<BucketResolver, Map<ResolvedTable, BucketRule>>()

/** The resolver's rule for `t`, cached (no closure per call: this runs once per row change). */
function cachedRule(resolver: BucketResolver, t: ResolvedTable): BucketRule {
  let m = ruleCache.get(resolver)
  if (m === undefined) {
    m = new Map()
    ruleCache.set(resolver, m)
  }
  let rule = m.get(t)
  if (rule === undefined) {
    rule = bucketRule(resolver.registry, t, resolver.globalFunction)
    m.set(t, rule)
  }
  return rule
}

/** Every record of a table with the global rule: one shared (never mutated) result. */
const GLOBAL_RESULT: BucketResult = { ok: true, buckets: [GLOBAL_BUCKET], set: new Set([GLOBAL_BUCKET]) }

/** Column-rule results per bucket-column value, kept up to this many values per rule (then started afresh). */
const COLUMN_CACHE_MAX = 10_000

/** UTF-8 takes at most 3 bytes per UTF-16 code unit: most ids are decided without encoding them. */
const tooLong = (b: string): boolean => b.length * 3 > MAX_BUCKET_ID_BYTES && Buffer.byteLength(b) > MAX_BUCKET_ID_BYTES

/** Removes empty ids and duplicates, keeping first-seen order (deterministic changelog order). */
export function normalizeBuckets(ids: Iterable<string | null>): string[] {
  const out = new Set<string>()
  for (const id of ids) if (id) out.add(id)
  return [...out]
}

/** Column rule → value → its (immutable, shared) result: one bucket id string and set per owner, not per row. */
class ColumnResults {
  readonly #byRule = new Map<BucketRule, Map<string | null, BucketResult>>()

  /** `v` undefined: the column is not in the row. */
  get(rule: Extract<BucketRule, { kind: 'column' }>, v: string | null | undefined): BucketResult {
    if (v === undefined)
      return { ok: false, error: `bucket column ${JSON.stringify(rule.column)} is missing from the row` }
    let m = this.#byRule.get(rule)
    if (m === undefined) {
      m = new Map()
      this.#byRule.set(rule, m)
    }
    let r = m.get(v)
    if (r === undefined) {
      if (m.size >= COLUMN_CACHE_MAX) m.clear()
      const buckets = bucketsFromValue(v, rule)
      r = { ok: true, buckets, set: new Set(buckets) }
      m.set(v, r)
    }
    return r
  }
}

/**
 * Computes buckets for many records at once: column rules in memory, parent chains with one JOIN query per table,
 * bucket functions with one query per (function, table) — per record only when that query fails, to isolate the
 * failing records. Never throws for a record's own problem; those come back as `{ ok: false }`.
 */
export class BucketResolver {
  readonly #savepoint = 'synchro_bucket_fn'
  readonly #columnResults = new ColumnResults()
  constructor(
    readonly registry: Registry,
    readonly catalog: ColumnCatalog,
    readonly globalFunction?: string,
  ) {}

  rule(t: ResolvedTable): BucketRule {
    return cachedRule(this, t)
  }

  async resolve(db: pg.ClientBase, reqs: readonly BucketRequest[]): Promise<BucketResult[]> {
    const out: BucketResult[] = new Array(reqs.length)
    const chains = new Map<string, number[]>()
    const fns = new Map<string, number[]>()
    for (const [i, r] of reqs.entries()) {
      const rule = this.rule(r.table)
      if (rule.kind === 'global') out[i] = GLOBAL_RESULT
      else if (rule.kind === 'column') out[i] = this.#columnResults.get(rule, r.row[rule.column])
      else if (rule.kind === 'parent') push(chains, r.table.tableName, i)
      else push(fns, `${rule.fn}\u0000${r.table.tableName}`, i)
    }
    for (const idx of chains.values()) await this.#resolveChains(db, reqs, idx, out)
    for (const [k, idx] of fns) await this.#resolveFunction(db, k.slice(0, k.indexOf('\u0000')), reqs, idx, out)
    // A bucket id too long for the changelog's btree indexes would fail the whole batch on every retry and stall the
    // stream: it becomes this record's rule failure instead.
    for (let i = 0; i < out.length; i++) {
      const r = out[i]
      if (r?.ok && r.buckets.some(tooLong))
        out[i] = { ok: false, error: `bucket id longer than ${MAX_BUCKET_ID_BYTES} bytes` }
    }
    return out
  }

  /** Walks the parent chain of one child table for all its requests with a single JOIN query. */
  async #resolveChains(
    db: pg.ClientBase,
    reqs: readonly BucketRequest[],
    idx: number[],
    out: BucketResult[],
  ): Promise<void> {
    const t = (reqs[idx[0] as number] as BucketRequest).table
    const fkCol = t.parentFkColumn as string
    const fks = new Set<string>()
    for (const i of idx) {
      const req = reqs[i] as BucketRequest
      const fk = req.row[fkCol]
      if (fk === undefined) out[i] = { ok: false, error: `parent FK column ${JSON.stringify(fkCol)} is missing` }
      else if (fk === null) out[i] = { ok: false, error: `parent FK column ${JSON.stringify(fkCol)} is NULL` }
      else fks.add(fk)
    }
    if (fks.size === 0) return
    const found = await this.parentBuckets(db, t, [...fks])
    for (const i of idx) {
      if (out[i]) continue
      const fk = (reqs[i] as BucketRequest).row[fkCol] as string
      const b = found.get(fk)
      out[i] = b
        ? { ok: true, buckets: b }
        : { ok: false, error: `parent row ${JSON.stringify(fk)} of ${JSON.stringify(t.tableName)} not found` }
    }
  }

  /**
   * Buckets a child of `t` inherits, for each given parent-FK value: one query joining up the chain to the first
   * ancestor with a bucket column. Missing parents are absent from the map.
   */
  async parentBuckets(db: pg.ClientBase, t: ResolvedTable, fkValues: string[]): Promise<Map<string, string[]>> {
    const chain = this.registry.ancestors(t)
    const root = chain[chain.length - 1]
    const rule = root ? columnRule(root) : undefined
    const first = chain[0]
    if (!root || !rule || !first) throw new Error(`table ${t.tableName} has no ancestor with a bucket column`)
    const idType = this.catalog.type(first, first.idColumn) ?? 'text'
    const joins: string[] = [`JOIN ${first.sqlName} a1 ON a1.${first.q.id} = k.fk::${idType}`]
    for (let i = 1; i < chain.length; i++) {
      const p = chain[i] as ResolvedTable
      const c = chain[i - 1] as ResolvedTable
      joins.push(`JOIN ${p.sqlName} a${i + 1} ON a${i + 1}.${p.q.id} = a${i}.${quoteIdent(c.parentFkColumn as string)}`)
    }
    const sql = `SELECT k.fk, a${chain.length}.${quoteIdent(rule.column)}::text AS b
                   FROM unnest($1::text[]) AS k(fk) ${joins.join(' ')}`
    const { rows } = await db.query<{ fk: string; b: string | null }>(sql, [fkValues])
    const map = new Map<string, string[]>()
    for (const r of rows) map.set(r.fk, bucketsFromValue(r.b, rule))
    return map
  }

  /**
   * Calls a SQL bucket function for many rows of one table. The function runs inside a savepoint: if it throws for
   * any row, the batch query is rolled back to it and rows are retried one by one (each in its own savepoint) so
   * one bad row becomes one rule failure and the surrounding transaction survives.
   */
  async #resolveFunction(
    db: pg.ClientBase,
    fn: string,
    reqs: readonly BucketRequest[],
    idx: number[],
    out: BucketResult[],
  ): Promise<void> {
    const t = (reqs[idx[0] as number] as BucketRequest).table
    const sql = `SELECT x.i, b.bucket::text AS bucket
      FROM unnest($1::int[], $2::text[], $3::jsonb[], $4::jsonb[]) AS x(i, op, new_row, old_row)
      CROSS JOIN LATERAL ${quoteTable(fn)}(
        $5::text, x.op,
        to_jsonb(jsonb_populate_record(NULL::${t.sqlName}, x.new_row)),
        CASE WHEN x.old_row IS NULL THEN NULL ELSE to_jsonb(jsonb_populate_record(NULL::${t.sqlName}, x.old_row)) END
      ) AS b(bucket)`
    const run = async (which: number[]): Promise<Map<number, string[]>> => {
      const { rows } = await db.query<{ i: number; bucket: string | null }>(sql, [
        which,
        which.map((i) => (reqs[i] as BucketRequest).op),
        which.map((i) => jsonRow(reqs[i] as BucketRequest, 'row')),
        which.map((i) => jsonRow(reqs[i] as BucketRequest, 'oldRow')),
        t.tableName,
      ])
      const m = new Map<number, (string | null)[]>()
      for (const r of rows) push(m, r.i, r.bucket)
      return new Map(which.map((i) => [i, normalizeBuckets(m.get(i) ?? [])]))
    }
    const sp = this.#savepoint
    await db.query(`SAVEPOINT ${sp}`)
    try {
      const res = await run(idx)
      await db.query(`RELEASE SAVEPOINT ${sp}`)
      for (const [i, b] of res) out[i] = { ok: true, buckets: b }
      return
    } catch {
      await db.query(`ROLLBACK TO SAVEPOINT ${sp}`)
      await db.query(`RELEASE SAVEPOINT ${sp}`)
    }
    for (const i of idx) {
      await db.query(`SAVEPOINT ${sp}`)
      try {
        const res = await run([i])
        out[i] = { ok: true, buckets: res.get(i) ?? [] }
      } catch (err) {
        await db.query(`ROLLBACK TO SAVEPOINT ${sp}`)
        out[i] = { ok: false, error: `bucket function ${fn}: ${errorText(err)}` }
      }
      await db.query(`RELEASE SAVEPOINT ${sp}`)
    }
  }
}

/**
 * The row as a JSON object for `jsonb_populate_record`: text values stay strings (PostgreSQL parses them with the
 * column type's input function, arrays included), json/jsonb values are parsed so they stay JSON, not strings.
 */
function jsonRow(req: BucketRequest, which: 'row' | 'oldRow'): string | null {
  const row = req[which]
  if (!row) return null
  if (!req.jsonColumns || req.jsonColumns.size === 0) return stringifyJsonLossless(row)
  const obj: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(row)) {
    obj[k] = v !== null && req.jsonColumns.has(k) ? safeParse(v) : v
  }
  return stringifyJsonLossless(obj)
}

function safeParse(s: string): unknown {
  try {
    return parseJsonLossless(s)
  } catch {
    return s
  }
}

/** A short error text for sync_rule_failures (the message only: SQL text and parameters never go there). */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k)
  if (a) a.push(v)
  else m.set(k, [v])
}
