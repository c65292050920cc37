import type pg from 'pg'
import type { EdgeEntry, EdgeState } from '../buckets/edges.js'
import { CopyBuffer, copyFrom, copyText } from './copy.js'
import { CHANGELOG_CHANNEL, notifyBuckets } from './listener.js'
import type { BatchOutput } from './output.js'

/** Opens the batch's transaction and locks the position row (one round trip); returns the stored LSN. */
export async function beginBatch(client: pg.ClientBase, slotName: string): Promise<bigint> {
  // Locks the position row: concurrent appliers for the same slot (a stale leader) serialise here, and the
  // value read is the one this transaction will overwrite, so "skip what is stored" is race-free.
  const res = (await client.query(
    `BEGIN; INSERT INTO sync_wal_position (slot_name, confirmed_lsn) VALUES (${client.escapeLiteral(slotName)}, 0)
     ON CONFLICT (slot_name) DO UPDATE SET slot_name = EXCLUDED.slot_name
     RETURNING confirmed_lsn::text AS lsn`,
  )) as unknown as pg.QueryResult<{ lsn: string }>[]
  return BigInt(res[res.length - 1]?.rows[0]?.lsn ?? '0')
}

/**
 * Writes the batch: changelog rows by COPY (in WAL order, so `seq` follows it), new edges by COPY (they do not
 * exist: the edge state says so, and only the position-lock holder writes edges), then, only if there are any,
 * one statement for removed edges and rule failures. With `copyEdges` false, edges are inserted ON CONFLICT
 * instead. The position is set by {@link commitBatch}.
 */
export async function writeBatch(db: pg.ClientBase, out: BatchOutput, state: EdgeState, copyEdges: boolean) {
  const del: [string[], string[], string[]] = [[], [], []]
  const ins: [string[], string[], string[]] = [[], [], []]
  const added: EdgeEntry[] = []
  for (const e of state.entries()) {
    if (e.initial === e.cur) continue
    for (const b of e.initial) if (!e.cur.has(b)) pushEdge(del, e, b)
    for (const b of e.cur) {
      if (e.initial.has(b)) continue
      if (copyEdges) {
        added.push(e)
        break
      }
      pushEdge(ins, e, b)
    }
  }
  // New edges go in in key order: consecutive inserts then land on the same or the next leaf page of the primary
  // key index instead of a random one (records have random ids): ≈ 30 % less backend CPU for the edge COPY.
  added.sort(byKey)
  const edgeCopy = new CopyBuffer()
  for (const e of added) {
    const prefix = `${copyText(e.table)}\t${copyText(e.id)}\t`
    for (const b of e.cur) if (!e.initial.has(b)) edgeCopy.add(`${prefix}${copyText(b)}\n`)
  }
  if (out.clRows > 0) {
    await copyFrom(db, 'COPY sync_changelog (bucket_id, table_name, record_id, operation) FROM STDIN', out.cl.bytes())
  }
  if (edgeCopy.length > 0) {
    await copyFrom(db, 'COPY sync_bucket_edges (table_name, record_id, bucket_id) FROM STDIN', edgeCopy.bytes())
  }
  if (del[0].length === 0 && ins[0].length === 0 && out.fOp.length === 0) return
  // Deleted and inserted edge keys are disjoint (per record, a bucket is either removed or added), so the
  // data-modifying CTEs, which share one snapshot, never touch the same row twice. PostgreSQL runs every
  // data-modifying CTE even when the main statement does not reference it.
  await db.query(
    `WITH ed AS (
       DELETE FROM sync_bucket_edges e USING unnest($1::text[], $2::text[], $3::text[]) AS x(t, r, b)
        WHERE e.table_name = x.t AND e.record_id = x.r AND e.bucket_id = x.b
       RETURNING 1
     ), ei AS (
       INSERT INTO sync_bucket_edges (table_name, record_id, bucket_id)
       SELECT * FROM unnest($4::text[], $5::text[], $6::text[])
       ON CONFLICT (table_name, record_id, bucket_id) DO UPDATE SET updated_at = now()
       RETURNING 1
     )
     INSERT INTO sync_rule_failures (table_name, record_id, operation, error_text, payload)
     SELECT * FROM unnest($7::text[], $8::text[], $9::int2[], $10::text[], $11::jsonb[])`,
    [...del, ...ins, out.fTable, out.fRecord, out.fOp, out.fError, out.fPayload],
  )
}

/**
 * Sets the new confirmed LSN (bigint, only increases), sends the NOTIFY when `buckets` is given, and commits: one
 * round trip. The NOTIFY is delivered to every LISTENing instance when (and only if) the transaction commits. Its
 * head is the last seq this session drew: only the position-lock holder writes the changelog, so it is the new
 * head. A listener that stops reading lets the notification queue fill; past half full the NOTIFY is skipped
 * (instances then find the batch by their fallback poll) rather than ever fail the capture on a full queue.
 */
export async function commitBatch(
  db: pg.ClientBase,
  slotName: string,
  lsn: bigint,
  buckets: Iterable<string> | null | undefined,
): Promise<void> {
  const notify =
    buckets === undefined
      ? ''
      : `SELECT CASE WHEN pg_notification_queue_usage() < 0.5 THEN pg_notify('${CHANGELOG_CHANNEL}',
           '{"seq":' || currval(pg_get_serial_sequence('sync_changelog', 'seq')) || ',"b":' ||
           ${db.escapeLiteral(buckets === null ? 'null' : notifyBuckets(buckets))} || '}') END;`
  await db.query(
    `INSERT INTO sync_wal_position (slot_name, confirmed_lsn, updated_at)
     VALUES (${db.escapeLiteral(slotName)}, ${lsn.toString()}, now())
     ON CONFLICT (slot_name) DO UPDATE
       SET confirmed_lsn = GREATEST(sync_wal_position.confirmed_lsn, EXCLUDED.confirmed_lsn), updated_at = now();
     ${notify} COMMIT`,
  )
}

/** The buckets a big transaction touches, for its NOTIFY: past a bound, "any bucket" (null). */
export class BucketSet {
  #set: Set<string> | null = new Set()
  addAll(bs: Iterable<string>): void {
    if (!this.#set) return
    for (const b of bs) this.#set.add(b)
    if (this.#set.size > 1_000) this.#set = null
  }
  values(): Iterable<string> | null {
    return this.#set
  }
}

function byKey(a: EdgeEntry, b: EdgeEntry): number {
  if (a.table !== b.table) return a.table < b.table ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}

function pushEdge(cols: [string[], string[], string[]], e: EdgeEntry, b: string): void {
  cols[0].push(e.table)
  cols[1].push(e.id)
  cols[2].push(b)
}
