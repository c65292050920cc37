/**
 * An in-process HTTP server that speaks the Synchro wire protocol from in-memory state. It is deliberately simple
 * (one user, LWW without tolerance, no buckets beyond echoing) and exists to test client logic: the real server is
 * exercised by e2e.pg.test.ts.
 */
import { createHash } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { PushRecord, PushResult, SchemaColumn, SchemaTable, SnapshotCursor, SyncRecord } from '@synchro/protocol'

export interface StoredRow {
  data: { [k: string]: unknown }
  updated_at: string
  deleted_at: string | null
}

interface LogEntry {
  seq: number
  table: string
  id: string
  op: 1 | 2 | 3
}

export interface RequestLogEntry {
  method: string
  path: string
  body: { [k: string]: unknown } | null
  status: number
  headers?: http.IncomingHttpHeaders
}

export function col(
  name: string,
  logical: SchemaColumn['logical_type'],
  opts: { db?: string; nullable?: boolean; def?: string; pk?: boolean } = {},
): SchemaColumn {
  const c: SchemaColumn = {
    name,
    db_type: opts.db ?? logical,
    logical_type: logical,
    nullable: opts.nullable ?? true,
    default_kind: opts.def === undefined ? 'none' : 'portable',
    is_primary_key: opts.pk ?? false,
  }
  if (opts.def !== undefined) {
    c.default_sql = opts.def
    c.sqlite_default_sql = opts.def
  }
  return c
}

export function table(name: string, columns: SchemaColumn[], extra: Partial<SchemaTable> = {}): SchemaTable {
  return {
    table_name: name,
    push_policy: 'owner_only',
    updated_at_column: 'updated_at',
    deleted_at_column: 'deleted_at',
    primary_key: ['id'],
    ...extra,
    columns: [
      col('id', 'string', { db: 'uuid', nullable: false, pk: true }),
      ...columns,
      col('created_at', 'datetime', { db: 'timestamp with time zone', nullable: false, def: 'CURRENT_TIMESTAMP' }),
      col('updated_at', 'datetime', { db: 'timestamp with time zone', nullable: false, def: 'CURRENT_TIMESTAMP' }),
      col('deleted_at', 'datetime', { db: 'timestamp with time zone' }),
    ],
  }
}

/** A schema covering every logical type. */
export function testSchema(): SchemaTable[] {
  return [
    table('lists', [col('name', 'string', { db: 'text', nullable: false, def: "''" })]),
    table(
      'items',
      [
        col('list_id', 'string', { db: 'uuid' }),
        col('title', 'string', { db: 'text', nullable: false, def: "''" }),
        col('done', 'boolean', { nullable: false, def: '0' }),
        col('qty', 'int', { db: 'integer', nullable: false, def: '1' }),
        col('big', 'int64', { db: 'bigint' }),
        col('price', 'float', { db: 'numeric(10,2)' }),
        col('meta', 'json', { db: 'jsonb', nullable: false, def: "'{}'" }),
        col('tags', 'json', { db: 'text[]', nullable: false, def: "'{}'" }),
        col('blob', 'bytes', { db: 'bytea' }),
        col('due', 'date', { db: 'date' }),
        col('at', 'time', { db: 'time without time zone' }),
      ],
      { parent_table: 'lists', parent_fk_col: 'list_id', dependencies: ['lists'] },
    ),
  ]
}

export class FakeServer {
  url = ''
  schemaVersion = 1
  tables: SchemaTable[]
  rows = new Map<string, Map<string, StoredRow>>()
  log: LogEntry[] = []
  seq = 0
  clients = new Map<string, { snapshotDone: boolean }>()
  requests: RequestLogEntry[] = []
  /**
   * Next responses to fail: status + Retry-After seconds, 'drop' to reset the connection before handling the request,
   * or 'lose' to handle it (and apply it) and then reset the connection instead of answering.
   */
  failures: ({ status: number; retryAfter?: number } | 'drop' | 'lose')[] = []
  /** Every request fails this way while set. */
  down: { status: number; retryAfter?: number } | 'drop' | null = null
  /** Record ids whose pushes answer rejected_retryable. */
  retryableIds = new Set<string>()
  /** Force pull to answer snapshot_required with this reason. */
  forceSnapshot: string | null = null
  /** Answer 426 to clients whose X-App-Version sorts below this (string compare is enough for tests). */
  minAppVersion: string | null = null
  /** Lets a test rewrite a pull response before it is sent. */
  mutatePull: ((out: { [k: string]: unknown }) => void) | null = null
  /** Artificial latency per request (ms). */
  latencyMs = 0
  /** Called when a request starts (tests use it to act during a request). */
  onRequest: ((path: string) => void | Promise<void>) | null = null
  /** Server clock in µs since the epoch (tests move it to make the server win or lose LWW). */
  clockUs = Date.UTC(2026, 10, 26) * 1000
  private server: http.Server | null = null

  constructor(tables: SchemaTable[] = testSchema()) {
    this.tables = tables
    for (const t of tables) this.rows.set(t.table_name, new Map())
  }

  get hash(): string {
    return createHash('sha256')
      .update(JSON.stringify({ tables: this.sorted() }))
      .digest('hex')
  }

  private sorted(): SchemaTable[] {
    return [...this.tables].sort((a, b) => a.table_name.localeCompare(b.table_name))
  }

  /** Server-side DDL: a new column (existing rows get `value`). */
  addColumn(tableName: string, c: SchemaColumn, value: unknown = null): void {
    const t = this.tables.find((x) => x.table_name === tableName)!
    t.columns.splice(t.columns.length - 3, 0, c)
    for (const r of this.rows.get(tableName)!.values()) r.data[c.name] = value
    this.schemaVersion++
  }

  addTable(t: SchemaTable): void {
    this.tables.push(t)
    this.rows.set(t.table_name, new Map())
    this.schemaVersion++
  }

  /** Monotonic server clock, µs precision: [PostgreSQL JSON rendering, Go RFC 3339]. */
  now(): { pg: string; go: string } {
    this.clockUs += 1000 + Math.floor(Math.random() * 1000)
    const ms = Math.floor(this.clockUs / 1000)
    const us = String(this.clockUs % 1_000_000).padStart(6, '0')
    const base = new Date(ms).toISOString().slice(0, 19)
    return { pg: `${base}.${us}+00:00`, go: `${base}.${us}Z` }
  }

  private append(table: string, id: string, op: 1 | 2 | 3): void {
    this.log.push({ seq: ++this.seq, table, id, op })
  }

  /** Server-side write (as if another app wrote to PostgreSQL): goes to the changelog. */
  serverUpsert(table: string, id: string, data: { [k: string]: unknown }): StoredRow {
    const t = this.rows.get(table)!
    const stamp = this.now().pg
    const prev = t.get(id)
    const row: StoredRow = {
      data: { ...(prev?.data ?? this.defaults(table)), ...data, id, updated_at: stamp },
      updated_at: stamp,
      deleted_at: prev?.deleted_at ?? null,
    }
    if (!prev) row.data.created_at = stamp
    row.data.deleted_at = row.deleted_at
    t.set(id, row)
    this.append(table, id, prev ? 2 : 1)
    return row
  }

  serverDelete(table: string, id: string): void {
    const r = this.rows.get(table)!.get(id)!
    const stamp = this.now().pg
    r.deleted_at = stamp
    r.updated_at = stamp
    r.data.deleted_at = stamp
    r.data.updated_at = stamp
    this.append(table, id, 3)
  }

  private defaults(table: string): { [k: string]: unknown } {
    const out: { [k: string]: unknown } = {}
    for (const c of this.tables.find((x) => x.table_name === table)!.columns) {
      if (c.logical_type === 'boolean') out[c.name] = false
      else if (c.logical_type === 'json') out[c.name] = c.db_type.endsWith('[]') ? [] : {}
      else if (c.logical_type === 'int') out[c.name] = 1
      else if (c.logical_type === 'string' && !c.nullable) out[c.name] = ''
      else out[c.name] = null
    }
    return out
  }

  private toRecord(table: string, id: string, r: StoredRow, withDeleted: boolean): SyncRecord {
    const cols = this.tables.find((x) => x.table_name === table)!.columns
    const data: { [k: string]: unknown } = {}
    for (const c of cols) data[c.name] = r.data[c.name] ?? null
    const rec: SyncRecord = { id, table_name: table, data, updated_at: toGo(r.updated_at) }
    if (withDeleted && r.deleted_at) rec.deleted_at = toGo(r.deleted_at)
    return rec
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      void this.handle(req, res)
    })
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()))
    const { port } = this.server.address() as AddressInfo
    this.url = `http://127.0.0.1:${port}`
    return this
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections()
    await new Promise<void>((r) => this.server?.close(() => r()) ?? r())
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    const path = (req.url ?? '').split('?')[0]!
    let body: { [k: string]: unknown } | null = null
    try {
      body = text ? JSON.parse(text) : null
    } catch {
      body = null
    }
    const entry: RequestLogEntry = { method: req.method ?? '', path, body, status: 0 }
    this.requests.push(entry)
    if (this.onRequest) await this.onRequest(path)
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs))
    const failure = this.down ?? this.failures.shift()
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      if (failure === 'lose') {
        entry.status = -2
        req.socket.destroy()
        return
      }
      entry.status = status
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers })
      res.end(JSON.stringify(payload))
    }
    if (failure === 'drop') {
      entry.status = -1
      req.socket.destroy()
      return
    }
    if (failure && failure !== 'lose') {
      const headers: Record<string, string> =
        failure.retryAfter !== undefined ? { 'Retry-After': String(failure.retryAfter) } : {}
      send(failure.status, { error: 'service temporarily unavailable', retry_after: failure.retryAfter ?? 0 }, headers)
      return
    }
    entry.headers = { ...req.headers }
    if (this.minAppVersion && String(req.headers['x-app-version'] ?? '') < this.minAppVersion) {
      send(426, { error: 'client upgrade required' })
      return
    }
    if (!req.headers['x-user-id'] && !req.headers.authorization) {
      send(401, { error: 'missing user identity' })
      return
    }
    if (path === '/sync/schema' && req.method === 'GET') {
      send(200, {
        schema_version: this.schemaVersion,
        schema_hash: this.hash,
        server_time: this.now().go,
        tables: this.sorted(),
      })
      return
    }
    if (req.method !== 'POST' || !body) {
      send(400, { error: 'invalid request body' })
      return
    }
    const v = body.schema_version
    const h = body.schema_hash
    const bootstrap = path === '/sync/register' && v === 0 && h === ''
    if (!bootstrap && (v !== this.schemaVersion || h !== this.hash)) {
      send(409, {
        code: 'schema_mismatch',
        message: 'client schema does not match server schema',
        server_schema_version: this.schemaVersion,
        server_schema_hash: this.hash,
      })
      return
    }
    const clientId = String(body.client_id ?? '')
    const pair = { schema_version: this.schemaVersion, schema_hash: this.hash }
    switch (path) {
      case '/sync/register': {
        if (!this.clients.has(clientId)) this.clients.set(clientId, { snapshotDone: false })
        send(200, { id: `srv-${clientId}`, server_time: this.now().go, checkpoint: 0, ...pair })
        return
      }
      case '/sync/pull': {
        const client = this.clients.get(clientId)
        if (!client) {
          send(404, { error: 'client not registered' })
          return
        }
        const checkpoint = Number(body.checkpoint ?? 0)
        if (this.forceSnapshot || (!client.snapshotDone && checkpoint === 0)) {
          send(200, {
            changes: [],
            deletes: [],
            checkpoint,
            has_more: false,
            snapshot_required: true,
            snapshot_reason: this.forceSnapshot ?? 'initial_sync_required',
            ...pair,
          })
          return
        }
        const limit = Math.min(Math.max(Number(body.limit ?? 100) || 100, 1), 1000)
        const entries = this.log.filter((e) => e.seq > checkpoint)
        const page = entries.slice(0, limit)
        const last = new Map<string, LogEntry>()
        for (const e of page) {
          last.delete(`${e.table}/${e.id}`)
          last.set(`${e.table}/${e.id}`, e)
        }
        const changes: SyncRecord[] = []
        const deletes: { id: string; table_name: string }[] = []
        for (const e of last.values()) {
          if (e.op === 3) deletes.push({ id: e.id, table_name: e.table })
          else {
            const r = this.rows.get(e.table)?.get(e.id)
            if (r) changes.push(this.toRecord(e.table, e.id, r, true))
          }
        }
        const out: { [k: string]: unknown } = {
          changes,
          deletes,
          checkpoint: page.length > 0 ? page[page.length - 1]!.seq : checkpoint,
          has_more: entries.length > limit,
          ...pair,
        }
        if (Array.isArray(body.known_buckets)) {
          const subs = ['user:u1', 'global']
          const known = body.known_buckets as string[]
          const added = subs.filter((s) => !known.includes(s))
          const removed = known.filter((s) => !subs.includes(s))
          if (added.length || removed.length) {
            out.bucket_updates = { ...(added.length ? { added } : {}), ...(removed.length ? { removed } : {}) }
          }
        }
        this.mutatePull?.(out)
        send(200, out)
        return
      }
      case '/sync/snapshot': {
        const client = this.clients.get(clientId)
        if (!client) {
          send(404, { error: 'client not registered' })
          return
        }
        const limit = Math.min(Math.max(Number(body.limit ?? 100) || 100, 1), 1000)
        const cursor = (body.cursor as SnapshotCursor | null) ?? { checkpoint: this.seq, table_idx: 0, after_id: '' }
        const records: SyncRecord[] = []
        let idx = cursor.table_idx
        let after = cursor.after_id
        while (idx < this.tables.length && records.length < limit) {
          const name = this.tables[idx]!.table_name
          const live = [...this.rows.get(name)!.entries()]
            .filter(([id, r]) => !r.deleted_at && id > after)
            .sort(([a], [b]) => (a < b ? -1 : 1))
          for (const [id, r] of live.slice(0, limit - records.length)) {
            records.push(this.toRecord(name, id, r, false))
            after = id
          }
          if (records.length < limit) {
            idx++
            after = ''
          }
        }
        const hasMore = idx < this.tables.length
        if (!hasMore) client.snapshotDone = true
        send(200, {
          records,
          ...(hasMore ? { cursor: { checkpoint: cursor.checkpoint, table_idx: idx, after_id: after } } : {}),
          checkpoint: cursor.checkpoint,
          has_more: hasMore,
          ...pair,
        })
        return
      }
      case '/sync/push': {
        if (!this.clients.has(clientId)) {
          send(404, { error: 'client not registered' })
          return
        }
        const accepted: PushResult[] = []
        const rejected: PushResult[] = []
        for (const c of (body.changes as PushRecord[] | undefined) ?? []) {
          const r = this.pushOne(c)
          ;(r.status === 'applied' ? accepted : rejected).push(r)
        }
        send(200, { accepted, rejected, checkpoint: 0, server_time: this.now().go, ...pair })
        return
      }
      default:
        send(404, { error: 'not found' })
    }
  }

  private pushOne(c: PushRecord): PushResult {
    const base = { id: c.id, table_name: c.table_name, operation: c.operation }
    const t = this.rows.get(c.table_name)
    const meta = this.tables.find((x) => x.table_name === c.table_name)
    if (!t || !meta) return { ...base, status: 'rejected_terminal', reason_code: 'table_not_registered' }
    if (meta.push_policy === 'disabled') return { ...base, status: 'rejected_terminal', reason_code: 'table_read_only' }
    if (this.retryableIds.has(c.id)) return { ...base, status: 'rejected_retryable', reason_code: 'update_failed' }
    const row = t.get(c.id)
    const clientTime = c.client_updated_at ?? '0001-01-01T00:00:00Z'
    const cols = new Set(meta.columns.map((x) => x.name))
    const writable = (data: unknown, create: boolean) => {
      const out: { [k: string]: unknown } = {}
      for (const [k, v] of Object.entries((data as { [k: string]: unknown }) ?? {})) {
        if (!cols.has(k) || ['created_at', 'updated_at', 'deleted_at'].includes(k)) continue
        if (k === 'id' && !create) continue
        out[k] = v
      }
      return out
    }
    const sv = (r: StoredRow, withDeleted: boolean) => this.toRecord(c.table_name, c.id, r, withDeleted)
    if (c.operation === 'create') {
      if (row && !row.deleted_at)
        return { ...base, status: 'conflict', reason_code: 'record_exists', server_version: sv(row, false) }
      if (row && cmp(clientTime, row.updated_at) <= 0) {
        return { ...base, status: 'conflict', reason_code: 'server_won_conflict', server_version: sv(row, false) }
      }
      if (typeof c.data !== 'object' || c.data === null || Array.isArray(c.data)) {
        return { ...base, status: 'rejected_terminal', reason_code: 'invalid_data' }
      }
      const stamp = this.now()
      const stored: StoredRow = {
        data: { ...this.defaults(c.table_name), ...(row?.data ?? {}), ...writable(c.data, true), id: c.id },
        updated_at: stamp.pg,
        deleted_at: null,
      }
      stored.data.updated_at = stamp.pg
      stored.data.created_at = row?.data.created_at ?? stamp.pg
      stored.data.deleted_at = null
      t.set(c.id, stored)
      this.append(c.table_name, c.id, 1)
      return { ...base, status: 'applied', server_updated_at: stamp.go }
    }
    if (c.operation === 'update') {
      if (!row)
        return { ...base, status: 'rejected_terminal', reason_code: 'record_not_found', message: 'record not found' }
      if (row.deleted_at)
        return { ...base, status: 'conflict', reason_code: 'record_deleted', server_version: sv(row, true) }
      const baseOk = c.base_updated_at != null && cmp(c.base_updated_at, row.updated_at) === 0
      if (!baseOk && cmp(clientTime, row.updated_at) <= 0) {
        return {
          ...base,
          status: 'conflict',
          reason_code: 'server_won_conflict',
          message: 'server version is newer',
          server_version: sv(row, false),
        }
      }
      const stamp = this.now()
      Object.assign(row.data, writable(c.data, false))
      row.updated_at = stamp.pg
      row.data.updated_at = stamp.pg
      this.append(c.table_name, c.id, 2)
      return { ...base, status: 'applied', server_updated_at: stamp.go }
    }
    if (c.operation === 'delete') {
      if (!row) return { ...base, status: 'rejected_terminal', reason_code: 'record_not_found' }
      if (row.deleted_at) return { ...base, status: 'applied', reason_code: 'already_deleted' }
      const stamp = this.now()
      row.deleted_at = stamp.pg
      row.updated_at = stamp.pg
      row.data.deleted_at = stamp.pg
      row.data.updated_at = stamp.pg
      this.append(c.table_name, c.id, 3)
      return { ...base, status: 'applied', server_updated_at: stamp.go, server_deleted_at: stamp.go }
    }
    return {
      ...base,
      status: 'rejected_terminal',
      reason_code: 'invalid_operation',
      message: `unknown operation: ${c.operation}`,
    }
  }
}

function toGo(pg: string): string {
  return pg.replace('+00:00', 'Z')
}

function cmp(a: string, b: string): number {
  const n = (s: string) => {
    const m = /^(.{19})(?:\.(\d+))?/.exec(s.replace(' ', 'T'))!
    return [Date.parse(`${m[1]}Z`), Number((m[2] ?? '').padEnd(9, '0'))] as const
  }
  const [as, an] = n(a)
  const [bs, bn] = n(b)
  return as !== bs ? as - bs : an - bn
}
