import {
  type BucketUpdates,
  clampLimit,
  type DeleteEntry,
  OP_DELETE,
  type PullRequest,
  type PullResponse,
  type SnapshotReason,
  type SyncRecord,
} from '@synchro/protocol'
import { historyGap } from '../changelog/reader.js'
import { type ClientColumns, type ClientRow, clientRowOf } from '../clients/clients.js'
import type { EngineContext } from '../core/context.js'
import { emitHook } from '../core/hooks.js'
import type { RequestDeadline } from '../limits/deadline.js'
import { jsonTextDeeperThan } from '../limits/limits.js'
import { runGated, runGatedThen } from '../request/gated.js'
import { openRequest, type RequestTx } from '../request/open.js'
import type { SchemaContract } from '../schema/contract.js'
import { memo } from '../util/memo.js'
import { rfc3339FromJson } from '../util/time.js'
import { advanceSql, type CheckHead, checkSql, readAhead, takeAhead, unchangedSince, withinDeadline } from './ahead.js'
import { cachedPageSql, PAGE_PLAN, type PageHead, type PageRow, pageHeadOf } from './page.js'
import { JSON_TEXT_TYPES, textRecord } from './record.js'
import { recordUnrenderable, rejectNul, type Unrenderable, unique, wirePageUpdatedAt } from './rows.js'

/** POST /sync/pull (PROTOCOL.md §1.5, §3 D; Decisions 1, 5, 8, 9, 10, 14, 19). */
export async function pull(
  ctx: EngineContext,
  userId: string,
  req: PullRequest,
  deadline?: RequestDeadline,
): Promise<PullResponse> {
  rejectNul([req.client_id, ...(req.tables ?? []), ...(req.known_buckets ?? [])])
  const limit = clampLimit(req.limit)
  // A negative checkpoint is a client at the very beginning: same meaning as 0.
  const checkpoint = Math.max(0, req.checkpoint ?? 0)
  // `tables: []` means no filter (§1.5). Duplicate subscriptions would return an entry twice.
  const tables = req.tables && req.tables.length > 0 ? unique(req.tables) : undefined

  const args: PullArgs = { userId, req, from: checkpoint, limit, tables, deadline }
  const served = (await pullAhead(ctx, args)) ?? (await pullInOneTrip(ctx, args)) ?? (await pullOpened(ctx, args))
  const { contract, client, page } = served
  const subs = unique(client.bucketSubs)
  const base = { schema_version: contract.version, schema_hash: contract.hash }

  const required = (reason: SnapshotReason): PullResponse => {
    emitHook(ctx, 'onSnapshotRequired', () => ({ userId, clientId: req.client_id, reason }))
    return {
      changes: [],
      deletes: [],
      checkpoint,
      has_more: false,
      snapshot_required: true,
      snapshot_reason: reason,
      ...base,
    }
  }
  if ('reason' in page) return required(page.reason)
  if (page.hasMore && !tables) startReadAhead(ctx, { ...args, from: page.checkpoint }, contract)
  await recordUnrenderable(ctx, page.unrenderable)

  const out: PullResponse = {
    changes: page.changes,
    deletes: page.deletes,
    checkpoint: page.checkpoint,
    has_more: page.hasMore,
    ...base,
  }
  const updates = bucketUpdates(subs, req.known_buckets)
  if (updates) out.bucket_updates = updates
  ctx.logger.debug(
    { changes: page.changes.length, deletes: page.deletes.length, hasMore: page.hasMore },
    'pull page served',
  )
  emitHook(ctx, 'onPullComplete', () => ({
    userId,
    clientId: req.client_id,
    checkpoint: page.checkpoint,
    changes: page.changes.length,
    deletes: page.deletes.length,
  }))
  return out
}

export interface Page {
  changes: SyncRecord[]
  deletes: DeleteEntry[]
  checkpoint: number
  hasMore: boolean
  unrenderable: Unrenderable[]
  /** The tables of the page's entries, including rows the caller's read predicate hid (live frames' sharing). */
  tables: Set<string>
  /** Create/update entries whose row was not returned (hard-deleted, or hidden by the read predicate). */
  missing: number
}

/** What a served pull found: the contract and client row its checks passed with, and the page (or why not). */
interface Served {
  contract: SchemaContract
  client: ClientRow
  page: Page | { reason: SnapshotReason }
}

/** A pull request, normalised (pull()). */
interface PullArgs {
  userId: string
  req: PullRequest
  /** The checkpoint (≥ 0). */
  from: number
  limit: number
  tables: string[] | undefined
  deadline: RequestDeadline | undefined
}

/**
 * The pull transaction's settings. The checkpoint advance is bookkeeping (a lost one only makes the next pull start
 * earlier; records are idempotent upserts): its commit does not wait for the WAL flush. No JIT: a page is a small
 * statement, and an estimate above `jit_above_cost` (a stale or generic plan) would compile it on every page
 * (measured ≈ 1.1 s when `enable_seqscan = off` inflated the cost of the one unavoidable sequential scan).
 */
const SETTINGS = { synchronous_commit: 'off', jit: 'off' }

/** Per engine, the contract the last opened pull found current and its catalog fingerprint (see pullInOneTrip). */
const lastOpened = new WeakMap<EngineContext, { fingerprint: string; contract: SchemaContract }>()

/**
 * The common pull in ONE round trip (request/gated.ts): when the contract the last pull found is still the cached
 * one and the request's schema pair is its pair, the page statement checks the rest itself (catalog fingerprint
 * unchanged, client row present and active, not a never-snapshotted client pulling from 0) and reads the page only
 * then. Anything else — or a closed gate — returns undefined, and the pull takes the opened path, which reports it
 * exactly as always (409, 404, the stale-client hook, initial_sync_required, a contract rebuild).
 */
async function pullInOneTrip(ctx: EngineContext, a: PullArgs): Promise<Served | undefined> {
  const { userId, req, from, limit, tables, deadline } = a
  const known = lastOpened.get(ctx)
  if (!known || ctx.contracts.cachedFor(known.fingerprint) !== known.contract) return undefined
  const { contract } = known
  if (contract.version !== req.schema_version || contract.hash !== req.schema_hash) return undefined
  const sql = cachedPageSql(ctx, contract, tables !== undefined, { kind: 'gated' })
  const values: unknown[] = [userId, from, limit, ctx.tables.map((t) => t.tableName), req.client_id]
  if (tables) values.push(tables)
  values.push(known.fingerprint) // tokenParam
  // The page is made from the rows while the COMMIT travels (runGated).
  return runGated<PageRow, Served | undefined>(
    ctx,
    userId,
    { settings: SETTINGS, deadline },
    {
      text: sql.text,
      values,
      types: JSON_TEXT_TYPES,
      prepare: sql.name,
      genericPlan: PAGE_PLAN,
    },
    (rows) => {
      const head = headOf(rows)
      if (!head.ok) return undefined
      const client = clientRowOf(head as PageHead & ClientColumns, userId, req.client_id)
      if (!client) return undefined
      return { contract, client, page: pageOf(ctx, rows, head, from, limit) }
    },
  )
}

/** What ahead.ts keys a page by: the request's user, client, checkpoint, limit and schema pair. */
function aheadRequest(a: PullArgs) {
  return {
    userId: a.userId,
    clientId: a.req.client_id,
    from: a.from,
    limit: a.limit,
    schemaVersion: a.req.schema_version,
    schemaHash: a.req.schema_hash,
  }
}

/** Reads the page after `a` ahead (ahead.ts, when enabled) when `contract` is the current one the last opened pull found. */
function startReadAhead(ctx: EngineContext, a: PullArgs, contract: SchemaContract): void {
  if (!ctx.pullReadAhead) return
  const known = lastOpened.get(ctx)
  if (known?.contract !== contract || ctx.contracts.cachedFor(known.fingerprint) !== contract) return
  readAhead(ctx, aheadRequest(a), contract, known.fingerprint)
}

/**
 * The pull served from a page read ahead for exactly this request (ahead.ts). Its opening statement (`checkSql`:
 * the gate, the client row, the retention facts) runs while the peek may still be running; then, if the peek's page
 * is still what this request would be given, the checkpoint advance travels with the COMMIT (`advanceSql`: two round
 * trips, as `pullInOneTrip` under a deadline). Undefined (nothing written) otherwise: the other paths answer.
 */
async function pullAhead(ctx: EngineContext, a: PullArgs): Promise<Served | undefined> {
  const known = lastOpened.get(ctx)
  if (a.tables || !known || ctx.contracts.cachedFor(known.fingerprint) !== known.contract) return undefined
  const { contract, fingerprint } = known
  const ahead = takeAhead(ctx, aheadRequest(a), contract)
  if (!ahead) return undefined
  const sql = checkSql(ctx)
  const query = { text: sql.text, values: [a.userId, a.from, a.req.client_id, fingerprint], prepare: sql.name }
  const opts = { settings: SETTINGS, deadline: a.deadline }
  return runGatedThen<{ head: string }, { ok: boolean }, Served>(ctx, a.userId, opts, query, async (rows) => {
    const text = rows[0]?.head
    const now = text ? (JSON.parse(text) as CheckHead) : undefined
    const peeked = await withinDeadline(ahead, a.deadline)
    if (!now?.ok || !peeked || !unchangedSince(now, peeked.head)) return undefined
    const client = clientRowOf(now, a.userId, a.req.client_id)
    if (!client || historyGap(a.from, { compacted: Number(now.compacted), issued: Number(now.issued) }))
      return undefined
    const page = pageOf(ctx, peeked.rows, peeked.head, a.from, a.limit)
    if ('reason' in page) return undefined
    const { head } = peeked
    if (head.visible === undefined) return undefined
    return {
      commit: advanceSql(client.id, page.checkpoint, head.fetched <= a.limit, head.visible, now.subs),
      accepted: (done) => done[0]?.ok === true,
      result: { contract, client, page },
    }
  })
}

/** The pull after `openRequest` (the request transaction's own round trip), then the page and COMMIT. */
async function pullOpened(ctx: EngineContext, a: PullArgs): Promise<Served> {
  const { userId, req, from, limit, tables, deadline } = a
  // BEGIN + one statement: app.user_id, schema pair (409), client row (404 / stale hook), in that order.
  const tx = await openRequest(ctx, userId, req, { access: 'read', settings: SETTINGS, deadline })
  const { contract, client } = tx
  lastOpened.set(ctx, { fingerprint: tx.fingerprint, contract })
  try {
    // "Completed a snapshot" = a stored checkpoint exists: only a final snapshot page or a served pull writes it.
    if (from === 0 && client.lastPullSeq === null) {
      await tx.abort()
      return { contract, client, page: { reason: 'initial_sync_required' } }
    }
    // Rows the server cannot render were left out of the page before anything commits (Decision 35).
    const page = await readPage(ctx, tx, contract, unique(client.bucketSubs), client.id, from, limit, tables)
    // The page statement committed with its own round trip (queryThenCommit); this only covers its fallback path.
    await tx.commit()
    return { contract, client, page }
  } catch (err) {
    await tx.abort()
    throw err
  }
}

/**
 * One page of `subs` after `from` (no checkpoint advance unless `clientRowId` is a client's row id), with `upTo` no
 * entry after that seq (`PageMode.capped`).
 */
export async function readPage(
  ctx: EngineContext,
  tx: Pick<RequestTx, 'queryThenCommit'>,
  contract: SchemaContract,
  subs: string[],
  clientRowId: string,
  from: number,
  limit: number,
  tables: string[] | undefined,
  upTo?: number,
): Promise<Page | { reason: SnapshotReason }> {
  const params: unknown[] = [subs, from, limit, ctx.tables.map((t) => t.tableName), clientRowId]
  if (tables) params.push(tables)
  if (upTo !== undefined) params.push(upTo)
  // The page statement and COMMIT travel together: one round trip for the whole page after the opening one.
  const sql = cachedPageSql(ctx, contract, tables !== undefined, { kind: 'opened', capped: upTo !== undefined })
  const rows = await tx.queryThenCommit<PageRow>({
    text: sql.text,
    values: params,
    types: JSON_TEXT_TYPES,
    prepare: sql.name,
    genericPlan: PAGE_PLAN,
  })
  return pageOf(ctx, rows, headOf(rows), from, limit)
}

function headOf(rows: PageRow[]): PageHead {
  const head = pageHeadOf(rows)
  if (!head) throw new Error('pull: page statement returned no head row')
  return head
}

/** The page the statement's rows make. */
function pageOf(
  ctx: EngineContext,
  rows: PageRow[],
  head: PageHead,
  from: number,
  limit: number,
): Page | { reason: SnapshotReason } {
  const gap = historyGap(from, { compacted: Number(head.compacted), issued: Number(head.issued) })
  if (gap) return { reason: gap }

  const changes: SyncRecord[] = []
  const deletes: DeleteEntry[] = []
  const unrenderable: Unrenderable[] = []
  const tableNames = new Set<string>()
  let missing = 0
  // The entries (entries of unregistered tables were dropped in SQL) come in seq order in the head; the rows, in no
  // particular order, are found by table, then id (one map per table: a `${table}\0${id}` key per lookup measured
  // ≈ 0.5 ms more per 1 000 entries).
  const found = new Map<string, Map<string, PageRow>>()
  for (const r of rows) {
    if (r.head !== null || r.table_name === null || r.id === null) continue
    memo(found, r.table_name, () => new Map<string, PageRow>()).set(r.id, r)
  }
  const { tables, ids, ops } = head
  let table = ''
  let byId: Map<string, PageRow> | undefined
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as string
    const operation = ops[i] as number
    if (tables[i] !== table) {
      table = tables[i] as string
      byId = found.get(table)
      tableNames.add(table)
    }
    if (operation === OP_DELETE) {
      deletes.push({ id, table_name: table })
      continue
    }
    // No row: hard-deleted (§3 D 46) or not readable by the caller (Decision 5, §3 D 54) — silently absent. A row
    // that cannot be *read* fails the statement instead (Decision 10): error, no checkpoint advance.
    const r = byId?.get(id)
    if (r === undefined || r.data === null) {
      missing++
      continue
    }
    if (jsonTextDeeperThan(r.data, ctx.limits.maxJsonDepth)) {
      unrenderable.push({ table, id, operation })
      continue
    }
    changes.push(textRecord(id, table, r.data, wirePageUpdatedAt(r), rfc3339FromJson(r.deleted_at)))
  }
  return {
    changes,
    deletes,
    checkpoint: head.last_seq === null ? from : Number(head.last_seq),
    hasMore: head.fetched > limit,
    unrenderable,
    tables: tableNames,
    missing,
  }
}

/**
 * Decision 19: `known_buckets` absent → nothing; present (even `[]`) → the difference with the subscriptions,
 * `added` in subscription order, `removed` in the order sent; undefined when both are empty.
 */
export function bucketUpdates(
  subs: readonly string[],
  known: readonly string[] | undefined,
): BucketUpdates | undefined {
  if (known === undefined) return undefined
  const knownSet = new Set(known)
  const subSet = new Set(subs)
  const added = unique(subs.filter((b) => !knownSet.has(b)))
  const removed = unique(known.filter((b) => !subSet.has(b)))
  if (added.length === 0 && removed.length === 0) return undefined
  const out: BucketUpdates = {}
  if (added.length > 0) out.added = added
  if (removed.length > 0) out.removed = removed
  return out
}
