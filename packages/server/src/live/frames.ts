import type pg from 'pg'
import type { EngineContext } from '../core/context.js'
import { readPage } from '../pull/pull.js'
import { renderJson } from '../pull/record.js'
import { accessPredicate } from '../rls/rls.js'

/** A frame carries at most this many changelog entries; a bigger range is announced by a poke (the client pulls). */
export const FRAME_MAX_ENTRIES = 200
/** …and at most this many bytes of rendered page. */
export const FRAME_MAX_BYTES = 256 * 1024
/** Rendered frames kept for the streams still to be written (oldest ranges evicted first). */
const CACHE_BYTES = 16 * 1024 * 1024
const CACHE_RANGES = 64
/** Renders running at once: each holds a pool connection for one page statement. */
const MAX_RENDERS = 4
const NOTHING: Rendered = { body: undefined, shared: false }
/** Stands in for a client row in the page statement: its checkpoint update matches no row. */
const NO_CLIENT = '00000000-0000-0000-0000-000000000000'

/** A rendered range: the frame text after `{"from":<n>,` (shared by every stream that gets it), or nothing to send. */
interface Rendered {
  body: Uint8Array | undefined
  /** The page holds only entries of tables without a read predicate: identical for every user. */
  shared: boolean
}

interface Range {
  firstUser: string
  first: Promise<Rendered>
  perUser: Map<string, Promise<Rendered>>
  bytes: number
}

/**
 * Renders the pages of live data frames: the changelog entries of some buckets in (prev, to], deduplicated and
 * hydrated exactly like a pull page (same statement, same read predicates), ONCE per range and bucket set when the
 * entries come only from tables every user may read — the common case of a shared bucket such as `global` — and
 * otherwise once per user. A thousand streams waiting for the same range share one render and one encoded body.
 * Ranges too big for a frame render to nothing (the stream sends a poke and the client pulls).
 */
export class FrameRenderer {
  readonly #ranges = new Map<string, Range>()
  #bytes = 0
  #running = 0
  readonly #waiting: (() => void)[] = []
  #publicTables: Set<string> | undefined

  /** `share`: false renders every user's frame on its own (the app's own RLS may make any table user-dependent). */
  constructor(
    private readonly ctx: EngineContext,
    private readonly share = true,
  ) {}

  /** The frame body for `userId`'s stream: entries of `buckets` in (`prev`, `to`], or undefined (send a poke). */
  async body(userId: string, buckets: readonly string[], prev: number, to: number): Promise<Uint8Array | undefined> {
    const sorted = [...buckets].sort()
    const key = `${prev}:${to}:${sorted.join('\u0000')}`
    let range = this.#ranges.get(key)
    if (!range) {
      range = { firstUser: userId, first: this.#render(userId, sorted, prev, to), perUser: new Map(), bytes: 0 }
      this.#remember(key, range, range.first)
    }
    const first = await range.first
    if (first.shared || range.firstUser === userId) return first.body
    let mine = range.perUser.get(userId)
    if (!mine) {
      mine = this.#render(userId, sorted, prev, to)
      range.perUser.set(userId, mine)
      this.#remember(key, range, mine)
    }
    return (await mine).body
  }

  /** Counts a render's bytes against the cache budget and evicts the oldest ranges beyond it. */
  #remember(key: string, range: Range, rendered: Promise<Rendered>): void {
    this.#ranges.set(key, range)
    void rendered.then((r) => {
      if (!r.body || this.#ranges.get(key) !== range) return
      range.bytes += r.body.byteLength
      this.#bytes += r.body.byteLength
      this.#evict()
    })
    this.#evict()
  }

  #evict(): void {
    for (const [key, range] of this.#ranges) {
      if (this.#ranges.size <= CACHE_RANGES && this.#bytes <= CACHE_BYTES) return
      this.#ranges.delete(key)
      this.#bytes -= range.bytes
    }
  }

  async #render(userId: string, buckets: string[], prev: number, to: number): Promise<Rendered> {
    await this.#slot()
    const ctx = this.ctx
    let db: pg.PoolClient
    try {
      db = await ctx.pool.connect()
    } catch (err) {
      this.#release()
      ctx.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'live: frame render failed')
      return NOTHING
    }
    let out = NOTHING
    try {
      // A contract not yet loaded (DDL just happened): the pull path loads it; a poke sends the client there.
      const contract = ctx.contracts.cachedFor(await this.#open(db, userId))
      // The page statement alone: nothing is written, the transaction is rolled back below.
      const query = { queryThenCommit: async <R extends object>(q: pg.QueryConfig) => (await db.query<R>(q)).rows }
      const page = contract
        ? await readPage(ctx, query, contract, buckets, NO_CLIENT, prev, FRAME_MAX_ENTRIES, undefined, to)
        : undefined
      // A change whose row did not come back is sent as a poke: the pull answers it as it always has (a row hidden
      // or hard-deleted is left out there too), and a frame never stands for a row it could not read.
      const complete =
        page && !('reason' in page) && !page.hasMore && page.unrenderable.length === 0 && page.missing === 0
      if (contract && page && complete && !('reason' in page)) {
        const json = renderJson({
          to,
          changes: page.changes,
          deletes: page.deletes,
          schema_version: contract.version,
          schema_hash: contract.hash,
        })
        const body = new TextEncoder().encode(`${json.slice(1)}\n\n`)
        const shared = [...page.tables].every((t) => this.#isPublic(t))
        if (body.byteLength <= FRAME_MAX_BYTES) out = { body, shared }
      }
    } catch (err) {
      ctx.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'live: frame render failed')
    }
    // Nothing was written: the rollback need not delay the frame (the connection and the slot wait for it).
    void db
      .query('ROLLBACK')
      .then(
        () => db.release(),
        (err: Error) => db.release(err),
      )
      .finally(() => this.#release())
    return out
  }

  /**
   * BEGIN, the user's read context and the schema fingerprint. In one round trip (simple protocol, values as quoted
   * literals) unless the user id holds a NUL byte, which no literal can carry.
   */
  async #open(db: pg.PoolClient, userId: string): Promise<string> {
    const ctx = this.ctx
    const tables = ctx.contracts.fingerprintParam()
    if (!userId.includes('\u0000') && tables.every((t) => !t.includes('\u0000'))) {
      const list = `ARRAY[${tables.map((t) => db.escapeLiteral(t)).join(', ')}]::text[]`
      const sql = `BEGIN; SELECT set_config('app.user_id', ${db.escapeLiteral(userId)}, true), ${ctx.contracts.fingerprintSql(list)} AS fp`
      const results = (await db.query(sql)) as unknown as pg.QueryResult<{ fp: string }>[]
      return results[1]?.rows[0]?.fp ?? ''
    }
    await db.query('BEGIN')
    const { rows } = await db.query<{ fp: string }>(
      `SELECT set_config('app.user_id', $1, true), ${ctx.contracts.fingerprintSql('$2')} AS fp`,
      [userId, tables],
    )
    return rows[0]?.fp ?? ''
  }

  #isPublic(table: string): boolean {
    if (!this.share) return false
    if (!this.#publicTables) {
      this.#publicTables = new Set(
        this.ctx.tables
          .filter((t) => accessPredicate(this.ctx.registry, t, 'read') === undefined)
          .map((t) => t.tableName),
      )
    }
    return this.#publicTables.has(table)
  }

  #slot(): Promise<void> {
    if (this.#running < MAX_RENDERS) {
      this.#running++
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  #release(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#running--
  }
}
