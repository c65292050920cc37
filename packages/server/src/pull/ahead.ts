import { createHash } from 'node:crypto'
import { bucketEntries, HISTORY_CTE, historyServes } from '../changelog/reader.js'
import { advancePullCte } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { deadlineSettings, RequestDeadline } from '../limits/deadline.js'
import { runGated } from '../request/gated.js'
import type { SchemaContract } from '../schema/contract.js'
import { cachedPageSql, openingCte, type PageHead, type PageRow, type PageSql } from './page.js'
import { JSON_TEXT_TYPES } from './record.js'
import { errorFacts } from './rows.js'

/**
 * Pull read-ahead: after serving a page that has more, the next page of the same user, client and checkpoint is read
 * in the background (a `peek` page statement, page.ts: the same gate and page as a served pull, no checkpoint
 * advance), so that PostgreSQL reads page N+1 while this process renders page N and the client fetches and applies
 * it. The next request takes it only when it asks for exactly that page (same checkpoint, limit, schema pair, no
 * `tables` filter) and its own opening statement (`serveSql`, one round trip like a served pull) finds, at the
 * request's moment:
 * - the gate of a served pull: catalog fingerprint of the contract, client row present and active, not a
 *   never-snapshotted client pulling from 0 — else the ordinary path answers (409, 404, 403, initial sync);
 * - the history still serving the checkpoint (compaction meanwhile → the ordinary path's snapshot_required);
 * - the same client row (id), subscriptions and `last_push_at` as the peek saw: a client re-registered, resubscribed,
 *   or that pushed since (its own writes must show in what it pulls next) reads afresh;
 * - no changelog entry in any subscribed bucket after the highest seq issued when the peek ran.
 * So the entries, `has_more` and the checkpoint are exactly what a request now would get, and the rows are what a
 * request at the peek's moment got: a row changed since then has a changelog entry after the page (seqs only grow;
 * the capture writes it once the change commits), which a later page brings. Only then the statement advances the
 * stored checkpoint — as the served pull would have, and never before the page is served: a peek that is never taken
 * changes nothing. Entries are bounded like the snapshot's read-ahead (its TTL; a quarter of its byte cap), at most
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
  const sql = cachedPageSql(ctx, contract, false, { kind: 'peek', fingerprint })
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
        values: [r.userId, r.from, r.limit, ctx.tables.map((t) => t.tableName), r.clientId],
        types: JSON_TEXT_TYPES,
        prepare: sql.name,
      },
    )
    const text = rows?.[0]?.head
    const head = text ? (JSON.parse(text) as PageHead) : undefined
    if (!rows || !head?.ok) return undefined
    // Counted while held; a request that took it while it ran holds it instead (and a replaced one is garbage).
    if (cache.entries.get(slot) !== entry) return { rows, head }
    let chars = 0
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
 * The page read ahead for `r` under `contract`, when there is one for exactly that request (the client's entry is
 * removed in any case). A peek still running is awaited while the request's deadline allows.
 */
export async function takeAhead(
  ctx: EngineContext,
  r: AheadRequest,
  contract: SchemaContract,
  deadline: RequestDeadline | undefined,
): Promise<Peeked | undefined> {
  const cache = caches.get(ctx)
  const slot = slotOf(r)
  const e = cache?.entries.get(slot)
  if (!cache || !e) return undefined
  cache.drop(slot, e)
  if (e.expires <= Date.now() || e.key !== keyOf(r) || e.contract !== contract) return undefined
  return withinDeadline(e.read, deadline)
}

/** `p`, or undefined when `deadline` (finite) runs out first. */
async function withinDeadline<T>(
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

/** The client row columns the serving statement's head carries (`CLIENT_COLUMNS`). */
const SERVE_HEAD = ['client_row_id', 'bucket_subs', 'last_pull_seq', 'last_sync_at', 'is_active']

const serveSqlCache = new WeakMap<EngineContext, Map<string, PageSql>>()

/**
 * The opening statement of a request served from a peeked page (see the top of this file): the checks, then the
 * checkpoint advance, only when they all pass. $1 user id, $2 checkpoint, $3 the checkpoint to store, $4 caught up
 * (Decision 36), $5 client id, $6 the peek's `bucket_subs`, $7 its client row id, $8 its `last_push_at`, $9 the
 * highest seq issued when it ran. One row: the head (JSON text) with `ok` and the client row.
 */
export function serveSql(ctx: EngineContext, fingerprint: string): PageSql {
  let byFp = serveSqlCache.get(ctx)
  if (!byFp) {
    byFp = new Map()
    serveSqlCache.set(ctx, byFp)
  }
  let sql = byFp.get(fingerprint)
  if (!sql) {
    // The probe walks the (bucket_id, seq) index in order (`bucketEntries`): without the ORDER BY the planner
    // expected an early hit and scanned the whole changelog, 6 ms on 100k entries, finding none.
    const text = `
WITH ${openingCte(ctx, fingerprint)},${HISTORY_CTE},
g AS (
  SELECT coalesce((SELECT ok FROM o) AND ${historyServes('$2')}
           AND (SELECT bucket_subs FROM o) = $6::text[] AND (SELECT client_row_id FROM o) = $7::text
           AND (SELECT last_push_at FROM o) IS NOT DISTINCT FROM $8::text
           AND NOT EXISTS (
                 SELECT 1 FROM (SELECT DISTINCT unnest(subs) FROM o) AS b(id)
                  CROSS JOIN LATERAL (
                        ${bucketEntries('1', '', '$9')}
                         LIMIT 1) c),
           false) AS ok
),
${advancePullCte('u', { rowId: '(SELECT client_row_id FROM o)', stored: '$3', caughtUp: '$4::text::boolean', when: '(SELECT ok FROM g)' })}
SELECT json_build_object('ok', g.ok, ${SERVE_HEAD.map((c) => `'${c}', o.${c}`).join(', ')})::text AS head
  FROM o CROSS JOIN g`
    sql = { text, name: `synchro_pull_ahead_${createHash('sha256').update(text).digest('hex').slice(0, 24)}` }
    byFp.set(fingerprint, sql)
  }
  return sql
}
