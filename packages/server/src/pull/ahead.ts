import { bucketEntries, HISTORY_CTE } from '../changelog/reader.js'
import { advancePullCte, type ClientColumns } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { deadlineSettings, RequestDeadline } from '../limits/deadline.js'
import { runGated } from '../request/gated.js'
import type { SchemaContract } from '../schema/contract.js'
import { memo } from '../util/memo.js'
import { preparedName } from '../util/sql.js'
import {
  CLIENT_HEAD,
  cachedPageSql,
  openingCte,
  PAGE_PLAN,
  type PageHead,
  type PageRow,
  type PageSql,
  pageHeadOf,
} from './page.js'
import { JSON_TEXT_TYPES } from './record.js'
import { errorFacts } from './rows.js'

/**
 * Pull read-ahead: after serving a page that has more, the next page of the same user, client and checkpoint is read
 * in the background (a `peek` page statement, page.ts: the same gate and page as a served pull, no checkpoint
 * advance), so that PostgreSQL reads page N+1 while this process renders page N and the client fetches and applies
 * it. The next request takes it only when it asks for exactly that page (same checkpoint, limit, schema pair, no
 * `tables` filter) and what its own opening statement (`checkSql`, sent while the peek may still run) and the
 * statement sent with its COMMIT (`advanceSql`) find, at the request's moment, allows it:
 * - the gate of a served pull: catalog fingerprint of the contract, client row present and active, not a
 *   never-snapshotted client pulling from 0 — else the ordinary path answers (409, 404, 403, initial sync);
 * - the history still serving the checkpoint (compaction meanwhile → the ordinary path's snapshot_required);
 * - the same client row (id), subscriptions and `last_push_at` as the peek saw: a client re-registered, resubscribed,
 *   or that pushed since (its own writes must show in what it pulls next) reads afresh;
 * - no changelog entry in any subscribed bucket after the highest seq visible when the peek ran (not the highest seq
 *   issued: a capture batch being written then has drawn seqs up to it, and its entries commit after the peek).
 * So the entries, `has_more` and the checkpoint are exactly what a request now would get, and the rows are what a
 * request at the peek's moment got: a row changed since then has a changelog entry after the page (seqs only grow;
 * the capture writes it once the change commits), which a later page brings. When the opening statement ran before
 * the peek did, the page was read while the request was under way, under its own gate: the comparisons then only
 * make the check stricter. Only then the checkpoint advances — as the served pull would have advanced it, and never
 * before the page is served: a peek that is never taken changes nothing. Entries are bounded like the snapshot's read-ahead (its TTL; a quarter of its byte cap), at most
 * one per (user, client), and a peek runs only while the pool has an idle connection and no request waits for one.
 */

/** A page read ahead: its statement rows and head (`ok`: the gate passed when it ran). */
export interface Peeked {
  rows: PageRow[]
  head: PageHead
}

interface Entry {
  key: string
  contract: SchemaContract
  read: Promise<Peeked | undefined>
  expires: number
  bytes: number
}

/** Peeks under way at once, per engine: read-ahead uses spare connections, never many. */
const MAX_READS = 2

/** Per-row overhead counted on top of a row's text. */
const ROW_OVERHEAD = 96

class PullAhead {
  readonly entries = new Map<string, Entry>()
  bytes = 0
  reads = 0

  drop(slot: string, e: Entry): void {
    if (this.entries.get(slot) !== e) return
    this.entries.delete(slot)
    this.bytes -= e.bytes
  }

  sweep(now: number): void {
    for (const [k, e] of this.entries) if (e.expires <= now) this.drop(k, e)
  }
}

const caches = new WeakMap<EngineContext, PullAhead>()

function cacheOf(ctx: EngineContext): PullAhead {
  let c = caches.get(ctx)
  if (!c) {
    c = new PullAhead()
    caches.set(ctx, c)
  }
  return c
}

/** What a request asks for, beyond its user and client (JSON keeps the parts apart). */
interface AheadRequest {
  userId: string
  clientId: string
  from: number
  limit: number
  schemaVersion: number | undefined
  schemaHash: string | undefined
}

function slotOf(r: AheadRequest): string {
  return JSON.stringify([r.userId, r.clientId])
}

function keyOf(r: AheadRequest): string {
  return JSON.stringify([r.from, r.limit, r.schemaVersion ?? null, r.schemaHash ?? null])
}

/**
 * Starts reading the page `r` will ask for (its `from` is the checkpoint just served), under `contract` (current
 * when it was served) and its catalog `fingerprint`, replacing the client's entry. Nothing when read-ahead is off
 * (TTL 0), the pool has no idle connection or a waiter, or enough peeks run already.
 */
export function readAhead(ctx: EngineContext, r: AheadRequest, contract: SchemaContract, fingerprint: string): void {
  const cache = cacheOf(ctx)
  const { ttlMs, maxBytes } = ctx.snapshotCache.options
  const slot = slotOf(r)
  const old = cache.entries.get(slot)
  if (old) cache.drop(slot, old)
  if (ttlMs <= 0 || cache.reads >= MAX_READS || ctx.pool.waitingCount > 0 || ctx.pool.idleCount === 0) return
  cache.sweep(Date.now())
  const sql = cachedPageSql(ctx, contract, false, { kind: 'peek' })
  const entry: Entry = { key: keyOf(r), contract, read: Promise.resolve(undefined), expires: 0, bytes: 0 }
  cache.reads++
  entry.read = (async (): Promise<Peeked | undefined> => {
    // Bounded like a request: statement and lock timeouts of one TTL (a page not taken by then is dropped anyway).
    const rows = await runGated<PageRow>(
      ctx,
      r.userId,
      // Writes nothing: its COMMIT travels with it (no deadline's commit phase), bounded by the timeouts alone.
      { settings: { jit: 'off', ...deadlineSettings(new RequestDeadline(ttlMs)) } },
      {
        text: sql.text,
        values: [r.userId, r.from, r.limit, ctx.tables.map((t) => t.tableName), r.clientId, fingerprint],
        types: JSON_TEXT_TYPES,
        prepare: sql.name,
        genericPlan: PAGE_PLAN,
      },
    )
    const head = rows && pageHeadOf(rows)
    if (!rows || !head?.ok) return undefined
    // Counted while held; a request that took it while it ran holds it instead (and a replaced one is garbage).
    if (cache.entries.get(slot) !== entry) return { rows, head }
    let chars = 0
    for (const row of rows) chars += row.head?.length ?? 0
    for (const row of rows) chars += (row.id?.length ?? 0) + (row.data?.length ?? 0) + (row.updated_at?.length ?? 0)
    const bytes = chars * 2 + rows.length * ROW_OVERHEAD
    if (cache.bytes + bytes > maxBytes / 4) {
      cache.drop(slot, entry)
      return undefined
    }
    entry.bytes = bytes
    cache.bytes += bytes
    return { rows, head }
  })()
    .catch((err: unknown) => {
      ctx.logger.debug({ err: errorFacts(err) }, 'pull read-ahead failed')
      return undefined
    })
    .finally(() => {
      cache.reads--
    })
  entry.expires = Date.now() + ttlMs
  cache.entries.set(slot, entry)
}

/**
 * The page read ahead for `r` under `contract` — still being read, perhaps — when there is one for exactly that
 * request (the client's entry is removed in any case).
 */
export function takeAhead(
  ctx: EngineContext,
  r: AheadRequest,
  contract: SchemaContract,
): Promise<Peeked | undefined> | undefined {
  const cache = caches.get(ctx)
  const slot = slotOf(r)
  const e = cache?.entries.get(slot)
  if (!cache || !e) return undefined
  cache.drop(slot, e)
  if (e.expires <= Date.now() || e.key !== keyOf(r) || e.contract !== contract) return undefined
  return e.read
}

/** `p`, or undefined when `deadline` (finite) runs out first. */
export async function withinDeadline<T>(
  p: Promise<T | undefined>,
  deadline: RequestDeadline | undefined,
): Promise<T | undefined> {
  const ms = deadline?.remainingMs() ?? Number.POSITIVE_INFINITY
  if (!Number.isFinite(ms)) return p
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, ms))
  })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** What the opening statement of a request served from a peeked page found (`checkSql`). */
export interface CheckHead extends ClientColumns {
  ok: boolean
  last_push_at: string | null
  /** The subscriptions in effect (the defaults when the client row names none). */
  subs: string[]
  compacted: string
  issued: string
}

const checkSqlCache = new WeakMap<EngineContext, PageSql>()

/**
 * The opening statement of a request served from a peeked page: the gate of a served pull (`openingCte`), the
 * client row and the retention facts, writing nothing. $1 user id, $2 checkpoint, $3 client id, $4 the schema token.
 * One row: the head.
 */
export function checkSql(ctx: EngineContext): PageSql {
  return memo(checkSqlCache, ctx, () => {
    const facts = ['ok', ...CLIENT_HEAD, 'last_push_at', 'subs'].map((c) => `'${c}', o.${c}`)
    const text = `
WITH ${openingCte(ctx, '$4', { user: '$1', from: '$2', client: '$3' })},${HISTORY_CTE}
SELECT json_build_object(${facts.join(', ')}, 'compacted', h.compacted::text, 'issued', h.issued::text)::text AS head
  FROM o CROSS JOIN h`
    return { text, name: preparedName('synchro_pull_check', text) }
  })
}

/**
 * Whether the client row the request's opening statement found (`now`) is the one the peek read the page for: same
 * row, subscriptions and `last_push_at` (a client re-registered, resubscribed or that pushed since reads afresh).
 */
export function unchangedSince(now: CheckHead, peek: PageHead): boolean {
  return (
    now.client_row_id === peek.client_row_id &&
    now.last_push_at === peek.last_push_at &&
    JSON.stringify(now.bucket_subs) === JSON.stringify(peek.bucket_subs)
  )
}

/**
 * The statement sent with the COMMIT of a request served from a peeked page: the checkpoint advance of client row
 * `rowId` to `stored` (`caughtUp`: Decision 36), only when no subscribed bucket got a changelog entry after `visible`,
 * the highest seq visible when the peek ran (`PageHead.visible`). One row: `ok`, whether it advanced. The probe walks
 * the (bucket_id, seq) index in order (`bucketEntries`): without the ORDER BY the planner expected an early hit and
 * scanned the whole changelog, 6 ms on 100k entries, finding none.
 */
export function advanceSql(
  rowId: string,
  stored: number,
  caughtUp: boolean,
  visible: string,
  subs: string[],
): { text: string; values: unknown[] } {
  const text = `
WITH f AS (
  SELECT NOT EXISTS (
           SELECT 1 FROM unnest($5::text[]) AS b(id)
            CROSS JOIN LATERAL (
                  ${bucketEntries('1', '', '$4')}
                   LIMIT 1) c) AS ok
),
${advancePullCte('u', { rowId: '$1', stored: '$2', caughtUp: '$3::boolean', when: '(SELECT ok FROM f)' })}
SELECT ok FROM f`
  return { text, values: [rowId, stored, String(caughtUp), visible, subs] }
}
