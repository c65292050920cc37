import type pg from 'pg'
import type { Registry, ResolvedTable } from '../registry/registry.js'
import type { Logger } from '../util/log.js'
import { quoteIdent } from '../util/sql.js'
import type { EdgeEntry, EdgeState } from './edges.js'
import type { BucketRequest, BucketResolver, TextRow } from './resolver.js'

/**
 * Edges for rows the capture never saw written: rows written before the replication slot existed (an application
 * adopting Synchro has rows already) or before their table was registered. Without edges, a TRUNCATE (which names
 * no rows) or a delete whose buckets can no longer be computed (a child whose parent is gone) leaves them on the
 * devices that took them by snapshot.
 *
 * The capture gives them edges, table by table, in chunks of keys. A chunk is read in one snapshot S (the live rows
 * of the key range that have no edge, and their buckets as the capture would compute them), then applied inside a
 * capture batch — at a place in the stream past every transaction S sees (`BackfillChunk.lsn`), so the edges agree
 * with the position the capture has reached. Records the capture changed meanwhile (from just before S was taken
 * until the chunk is applied) are left out: the change gave them the capture's own edges, or S does not show their
 * state at that place (`Touched`). A record that has an edge by then is left alone too. The progress (the last key
 * done) is written in the same transaction as the edges: a crash loses the chunk under way, never a part of one.
 */

/** A chunk of a table's rows without edges, read in one snapshot, waiting for its place in the stream. */
export interface BackfillChunk {
  readonly table: ResolvedTable
  /** The last key done before this chunk (the progress it continues), null from the first key. */
  readonly from: string | null
  /** The last key the chunk covers (`from` when the range was empty). */
  readonly to: string | null
  /** The table's last chunk: no key after `to`. */
  readonly last: boolean
  /** Live records without edges in the snapshot, and their buckets (records touched since are taken out). */
  readonly rows: Map<string, readonly string[]>
  /** A WAL position after every transaction the snapshot sees: the chunk is applied once the stream is past it. */
  readonly lsn: bigint
  /** The records of the table the capture changed since the snapshot was about to be taken. */
  readonly touched: Touched
  /** Once applied in a batch: how many records got edges (undefined: not applied, see `mergeChunk`). */
  added?: number | undefined
}

/**
 * The records of one table the capture computed since this was opened (just before a chunk's snapshot): their
 * edges are the capture's, the chunk's would be stale. `stale` when another writer wrote the changelog meanwhile
 * (what it touched is unknown); `truncated` after a TRUNCATE of the table (every record the chunk read is gone).
 */
export class Touched {
  stale = false
  truncated = false
  #ids: Set<string> | null = new Set()
  #rows: Map<string, readonly string[]> | null = null

  constructor(
    readonly table: string,
    readonly watch: BackfillWatch,
  ) {}

  add(id: string): void {
    if (this.#rows) this.#rows.delete(id)
    else this.#ids?.add(id)
  }

  /** From now on, touched records leave `rows` at once (those touched so far leave it now): no set of its own. */
  restrict(rows: Map<string, readonly string[]>): void {
    for (const id of this.#ids ?? []) rows.delete(id)
    this.#ids = null
    this.#rows = rows
  }

  close(): void {
    this.watch.close(this)
  }
}

/**
 * What one batch applier tells the backfill: every batch it computes is reported to the open `Touched` sets, and
 * the stored LSN it finds under the position lock tells whether another writer (a stale leader) wrote meanwhile.
 */
export class BackfillWatch {
  readonly #open = new Set<Touched>()
  /** The stored LSN as the applier last saw it (read at its start, or committed). */
  #position: bigint | undefined

  /** The stored LSN the applier read when it started. */
  read(lsn: bigint): void {
    this.#position ??= lsn
  }

  /** Under the position lock: another stored LSN than the one last seen means another writer wrote the changelog. */
  locked(stored: bigint): void {
    if (this.#position !== undefined && stored !== this.#position) this.invalidate()
    this.#position = stored
  }

  /** The applier committed a batch, storing `lsn`. */
  committed(lsn: bigint): void {
    this.#position = lsn
  }

  open(table: string): Touched {
    const t = new Touched(table, this)
    this.#open.add(t)
    return t
  }

  close(t: Touched): void {
    this.#open.delete(t)
  }

  /** A batch (or a part of a spilled transaction) was computed: every record in its edge state was touched. */
  touched(state: EdgeState): void {
    for (const t of this.#open) {
      if (state.loadedWhole(t.table)) t.truncated = true
      else for (const e of state.ofTable(t.table)) t.add(e.id)
    }
  }

  /** Another writer wrote the changelog since this applier's last batch: what it touched is unknown. */
  invalidate(): void {
    for (const t of this.#open) t.stale = true
  }
}

/**
 * At a session's start: a progress row for every registered table (new ones start from their first key), none for
 * tables no longer registered (registered again later, their rows are gone over again: changes made meanwhile were
 * not captured). `restart`: every table starts over (the slot is about to be created: changes made while none
 * existed were not captured). Returns the registered tables whose backfill is not done (none, with a warning, when
 * the migration that creates the progress table has not run: the capture then works as before it).
 */
export async function prepareBackfill(
  pool: pg.Pool,
  registry: Registry,
  restart: boolean,
  log: Logger,
): Promise<ResolvedTable[]> {
  const tables = registry.tables()
  const names = tables.map((t) => t.tableName)
  const client = await pool.connect()
  let ok = false
  try {
    await client.query('BEGIN')
    await client.query('DELETE FROM sync_edge_backfill WHERE $2 OR NOT (table_name = ANY($1::text[]))', [
      names,
      restart,
    ])
    await client.query(
      'INSERT INTO sync_edge_backfill (table_name) SELECT unnest($1::text[]) ON CONFLICT (table_name) DO NOTHING',
      [names],
    )
    const { rows } = await client.query<{ t: string }>(
      'SELECT table_name AS t FROM sync_edge_backfill WHERE done AND table_name = ANY($1::text[])',
      [names],
    )
    await client.query('COMMIT')
    ok = true
    const done = new Set(rows.map((r) => r.t))
    return tables.filter((t) => !done.has(t.tableName))
  } catch (err) {
    if ((err as { code?: string }).code !== '42P01') throw err
    log.warn(
      {},
      'wal: sync_edge_backfill is missing (run the migrations): rows written before the capture get no edges',
    )
    return []
  } finally {
    if (!ok) await client.query('ROLLBACK').catch(() => {})
    client.release(!ok)
  }
}

/** Where a table's backfill stands: the last key done (null: none yet) and whether it is done; undefined: no row. */
export async function backfillProgress(
  db: pg.Pool | pg.ClientBase,
  table: string,
): Promise<{ after: string | null; done: boolean } | undefined> {
  const { rows } = await db.query<{ after: string | null; done: boolean }>(
    'SELECT after_key AS after, done FROM sync_edge_backfill WHERE table_name = $1',
    [table],
  )
  return rows[0]
}

/** What a chunk read found: the rows it looked at, and those whose buckets could not be computed. */
export interface ChunkFacts {
  scanned: number
  failed: number
}

/**
 * Reads the next chunk of `t` after key `from`: the next `limit` keys, and of them the live rows without an edge with
 * their buckets (computed in the same snapshot, as the capture computes an insert's). Records whose buckets cannot
 * be computed are left without edges, as the capture leaves them (no rule failure is written: none was captured).
 * `touched` must be opened before this is called. Ends with a WAL message whose position is the chunk's `lsn`.
 */
export async function readChunk(
  pool: pg.Pool,
  resolver: BucketResolver,
  t: ResolvedTable,
  from: string | null,
  limit: number,
  touched: Touched,
): Promise<{ chunk: BackfillChunk; facts: ChunkFacts }> {
  const client = await pool.connect()
  let ok = false
  try {
    // One snapshot for the rows, their edges and the parents their buckets come from.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ')
    const { columns, json } = await rowColumns(client, resolver, t)
    const idType = resolver.catalog.type(t, t.idColumn) ?? 'text'
    const live = resolver.catalog.has(t, t.deletedAtColumn) ? `x.${t.q.deletedAt} IS NULL` : 'true'
    const values = columns.length > 0 ? `ARRAY[${columns.map((c) => `x.${quoteIdent(c)}::text`).join(', ')}]` : "'{}'"
    // Keyset pages on the primary key (two texts: an `OR $3 IS NULL` would keep the index from bounding the scan).
    const { rows } = await client.query<{ id: string; v: (string | null)[] | null }>(
      `SELECT x.${t.q.id}::text AS id,
              CASE WHEN ${live} AND NOT EXISTS (
                     SELECT 1 FROM sync_bucket_edges e WHERE e.table_name = $1 AND e.record_id = x.${t.q.id}::text)
                   THEN ${values}::text[] END AS v
         FROM ${t.sqlName} x ${from === null ? '' : `WHERE x.${t.q.id} > $3::${idType}`}
        ORDER BY x.${t.q.id} LIMIT $2`,
      from === null ? [t.tableName, limit] : [t.tableName, limit, from],
    )
    const ids: string[] = []
    const reqs: BucketRequest[] = []
    for (const r of rows) {
      if (r.v === null) continue
      const row: TextRow = {}
      for (let i = 0; i < columns.length; i++) row[columns[i] as string] = r.v[i] ?? null
      ids.push(r.id)
      reqs.push({ table: t, op: 'create', row, oldRow: null, jsonColumns: json })
    }
    const results = reqs.length > 0 ? await resolver.resolve(client, reqs) : []
    const found = new Map<string, readonly string[]>()
    let failed = 0
    for (let i = 0; i < results.length; i++) {
      const r = results[i]
      if (!r?.ok) failed++
      else if (r.buckets.length > 0) found.set(ids[i] as string, r.buckets)
    }
    // Written after the snapshot was taken: every transaction it sees ends before this position.
    const mark = await client.query<{ lsn: string }>(
      `SELECT (pg_logical_emit_message(true, 'synchro', 'edge backfill') - '0/0'::pg_lsn)::text AS lsn`,
    )
    await client.query('COMMIT')
    ok = true
    touched.restrict(found)
    const chunk: BackfillChunk = {
      table: t,
      from,
      to: rows.at(-1)?.id ?? from,
      last: rows.length < limit,
      rows: found,
      lsn: BigInt(mark.rows[0]?.lsn ?? '0'),
      touched,
    }
    return { chunk, facts: { scanned: rows.length, failed } }
  } finally {
    if (!ok) await client.query('ROLLBACK').catch(() => {})
    client.release(!ok)
  }
}

/** The columns a table's bucket rule reads (every column for a bucket function), and which of them are JSON. */
async function rowColumns(
  db: pg.ClientBase,
  resolver: BucketResolver,
  t: ResolvedTable,
): Promise<{ columns: string[]; json: ReadonlySet<string> }> {
  const rule = resolver.rule(t)
  if (rule.kind === 'column') return { columns: [rule.column], json: new Set() }
  if (rule.kind === 'parent') return { columns: [t.parentFkColumn as string], json: new Set() }
  if (rule.kind === 'global') return { columns: [], json: new Set() }
  const { rows } = await db.query<{ name: string; json: boolean }>(
    `SELECT attname AS name, atttypid IN ('json'::regtype, 'jsonb'::regtype) AS json
       FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    [t.sqlName],
  )
  return { columns: rows.map((r) => r.name), json: new Set(rows.filter((r) => r.json).map((r) => r.name)) }
}

/**
 * Applies a chunk inside a capture batch, once the batch's changes are computed and reported to the watch: moves the
 * table's progress from the chunk's `from` to its `to`, and gives the records still without edges theirs (written
 * with the batch's other new edges). Returns how many records got edges, or undefined when the chunk no longer
 * applies (the progress moved on, or another writer wrote the changelog meanwhile): it is then read again.
 */
export async function mergeChunk(
  db: pg.ClientBase,
  state: EdgeState,
  chunk: BackfillChunk,
): Promise<number | undefined> {
  if (chunk.touched.stale) return undefined
  const moved = await db.query(
    `UPDATE sync_edge_backfill SET after_key = $2, done = $3, updated_at = now()
      WHERE table_name = $1 AND after_key IS NOT DISTINCT FROM $4 AND NOT done`,
    [chunk.table.tableName, chunk.to, chunk.last, chunk.from],
  )
  if (moved.rowCount !== 1) return undefined
  if (chunk.touched.truncated || chunk.rows.size === 0) return 0
  const ids = [...chunk.rows.keys()]
  const entries: EdgeEntry[] = new Array(ids.length)
  await state.load(
    db,
    ids.map((id) => ({ table: chunk.table, id })),
    entries,
  )
  let added = 0
  for (let i = 0; i < ids.length; i++) {
    const e = entries[i] as EdgeEntry
    if (e.initial.size > 0 || e.cur.size > 0) continue
    e.cur = new Set(chunk.rows.get(ids[i] as string))
    added++
  }
  return added
}
