import type { SnapshotReason } from '@synchro/protocol'
import type pg from 'pg'

/** A pool or one of its connections (a request transaction). */
export type Queryable = pg.Pool | pg.ClientBase

/** SQL: the changelog's size in bytes (a pull page reports it, to notice when its generic plan went stale). */
export const CHANGELOG_SIZE_SQL = "pg_relation_size('sync_changelog'::regclass)"

/**
 * SQL fragment: a CTE `h(compacted, issued)` with the retention facts (Decisions 1, 8) — the highest seq compaction
 * removed, and the highest seq ever issued. The sequence's last value survives an empty changelog; it is read only
 * when the role may (otherwise max(seq) and the compaction boundary stand in). Read in the same statement as the
 * entries, so a compaction batch committing meanwhile cannot leave an unnoticed hole.
 */
export const HISTORY_CTE = `
h AS (
  SELECT coalesce((SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1), 0) AS compacted,
         GREATEST(
           (SELECT max(seq) FROM sync_changelog),
           (SELECT CASE WHEN has_sequence_privilege(s.oid, 'SELECT,USAGE') THEN pg_sequence_last_value(s.oid) END
              FROM (SELECT pg_get_serial_sequence('sync_changelog', 'seq')::regclass AS oid) s),
           (SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1),
           0) AS issued
)`

/**
 * SQL expression over `HISTORY_CTE`'s `h`: the highest seq the statement can see — the head, or the retention boundary
 * when higher. Every entry committed later has a higher seq (the capture writes one batch at a time), which the highest
 * seq *issued* does not tell: a batch being written has drawn seqs up to it, and its entries commit afterwards.
 */
export const VISIBLE_HEAD_SQL = 'GREATEST((SELECT max(seq) FROM sync_changelog), (SELECT compacted FROM h))'

/** The retention facts `HISTORY_CTE` yields, as numbers. */
export interface History {
  compacted: number
  issued: number
}

/**
 * Whether a client at checkpoint `from` can still be served from the changelog, else why it needs a snapshot.
 * Decision 8: ahead of every seq ever issued → the database lost history (e.g. restored from a backup). Decision 1:
 * only entries with seq ≤ compacted are gone; a client at exactly that seq lost nothing.
 */
export function historyGap(from: number, h: History): SnapshotReason | undefined {
  if (from > h.issued) return 'history_unavailable'
  if (from < h.compacted) return 'checkpoint_before_retention'
  return undefined
}

/** SQL condition, true when the checkpoint `$param` can be served (the same test as `historyGap`, inside SQL). */
export function historyServes(param: string): string {
  return `${param} BETWEEN (SELECT compacted FROM h) AND (SELECT issued FROM h)`
}

/**
 * SQL fragment: the entries of one subscribed bucket `b.id` after $2, in seq order, for a `CROSS JOIN LATERAL` over
 * the subscribed buckets `b(id)`. `(bucket_id, seq) > (b.id, $2) AND bucket_id <= b.id` means `bucket_id = b.id AND
 * seq > $2`, but written so that only the (bucket_id, seq) index can serve it and its order: with the plain form the
 * planner (bucket_id being "fixed", the ORDER BY reduces to seq) walked the seq (primary key) index filtering
 * buckets whenever the statistics made the bucket look common — and a bucket with few entries (`global`) then
 * walked the whole changelog tail on every page (9–13 ms per page of a 100k tail instead of 0.1 ms).
 * `columns` are changelog columns (seq, table_name, record_id, operation); `extra` is appended to the WHERE clause;
 * `after` is the placeholder of the seq the entries follow.
 */
export function bucketEntries(columns: string, extra: string, after = '$2'): string {
  return `SELECT ${columns}
           FROM sync_changelog
          WHERE (bucket_id, seq) > (b.id, ${after}::bigint) AND bucket_id <= b.id${extra}
          ORDER BY bucket_id, seq`
}

/** The head: the highest seq present (0 when the changelog is empty). An index lookup. */
export async function headSeq(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM sync_changelog')
  return Number(rows[0]?.seq ?? 0)
}

/**
 * The checkpoint a snapshot captures (Decision 7): the head, or the retention boundary when it is higher — compaction
 * may have deleted every entry (all active clients caught up), and a head of 0 below the boundary would make every pull
 * from the snapshot answer checkpoint_before_retention, so the client would rebuild again and again. Every seq up to the
 * boundary was committed, and its change was visible, before compaction deleted it: rows read in the same snapshot
 * as this hold it.
 */
export async function snapshotHeadSeq(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ seq: string }>(`WITH ${HISTORY_CTE} SELECT (${VISIBLE_HEAD_SQL})::text AS seq`)
  return Number(rows[0]?.seq ?? 0)
}

/**
 * The buckets that got entries with `after < seq <= upTo` — or undefined when they can no longer be told: compaction
 * has removed entries after `after` (its boundary, read in the same statement, is past it), and the buckets of those
 * entries are gone with them. Compaction stops waiting for a client gone stale, and an entry every active client has
 * pulled can be removed before the live notifier read its range: a stream of that stale client (still open, still
 * applying frames) would then never hear of it — a delete or move out of its buckets missed, the row kept.
 */
export async function bucketsBetween(db: Queryable, after: number, upTo: number): Promise<Set<string> | undefined> {
  const { rows } = await db.query<{ compacted: string; buckets: string[] }>(
    `SELECT coalesce((SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1), 0)::text AS compacted,
            ARRAY(SELECT DISTINCT bucket_id FROM sync_changelog WHERE seq > $1 AND seq <= $2) AS buckets`,
    [after, upTo],
  )
  const row = rows[0]
  if (!row || Number(row.compacted) > after) return undefined
  return new Set(row.buckets)
}
