import type { Queryable } from './reader.js'

/** The changelog's state, for metrics and `synchrod status`. */
export interface ChangelogStats {
  /** Entries in the changelog: exact, or the planner's estimate when `estimated` (see `exactBelow`). */
  entries: number
  estimated: boolean
  /** Lowest seq present (null when empty). */
  minSeq: number | null
  /** The head: the highest seq present, the newest captured change (null when empty). */
  headSeq: number | null
  /** Compaction boundary: entries up to here were removed; a client behind it must snapshot (0: none removed). */
  compactedSeq: number
  /** Table plus indexes, in bytes. */
  sizeBytes: number
}

export interface ChangelogStatsOptions {
  /**
   * Count the entries exactly while the planner estimates fewer than this many, else report its estimate:
   * count(*) over millions of rows on every metrics scrape would load the database. Default: always exact.
   */
  exactBelow?: number
}

/**
 * One statement: min/max come from the primary-key index, the size from the relation's files; a never-analysed
 * table (estimate -1) is counted exactly.
 */
const STATS_SQL = `
SELECT CASE WHEN $1::float8 IS NULL OR c.reltuples < $1::float8 THEN (SELECT count(*) FROM sync_changelog)
            ELSE c.reltuples::bigint END::text AS n,
       ($1::float8 IS NOT NULL AND c.reltuples >= $1::float8) AS estimated,
       (SELECT min(seq) FROM sync_changelog)::text AS min,
       (SELECT max(seq) FROM sync_changelog)::text AS max,
       (SELECT max_compacted_seq FROM sync_compaction_state LIMIT 1)::text AS compacted,
       pg_total_relation_size(c.oid)::text AS size
  FROM pg_class c
 WHERE c.oid = 'sync_changelog'::regclass`

/** Reads the changelog's statistics (throws when the Synchro tables are not installed: see `changelogInstalled`). */
export async function changelogStats(db: Queryable, opts: ChangelogStatsOptions = {}): Promise<ChangelogStats> {
  const { rows } = await db.query<{
    n: string
    estimated: boolean
    min: string | null
    max: string | null
    compacted: string | null
    size: string
  }>(STATS_SQL, [opts.exactBelow ?? null])
  const r = rows[0]
  if (!r) throw new Error('changelog stats: no row')
  return {
    entries: Number(r.n),
    estimated: r.estimated,
    minSeq: r.min === null ? null : Number(r.min),
    headSeq: r.max === null ? null : Number(r.max),
    compactedSeq: Number(r.compacted ?? 0),
    sizeBytes: Number(r.size),
  }
}

/** Whether the changelog table exists (the migrations ran in this database). */
export async function changelogInstalled(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>(`SELECT to_regclass('sync_changelog') IS NOT NULL AS ok`)
  return rows[0]?.ok === true
}
