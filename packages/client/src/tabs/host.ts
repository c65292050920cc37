/**
 * The owner tab's side: runs other tabs' sessions on its LocalDatabase (one transaction each, under the same mutex
 * as its own work), tells every tab what changed, and relays sync status. A tab that goes away mid-session has its
 * transaction rolled back, so a closed tab never leaves the database locked.
 */
import type { SqliteExecutor } from '../driver.js'
import type { LocalDatabase } from '../store/database.js'
import { toWire } from './rpc.js'
import { COMMITS_TABLE, ensureCommitsTable } from './shared-database.js'
import type { RequestBody, TabCoordination, TabMessage } from './types.js'

interface Session {
  from: string
  ex: Promise<SqliteExecutor>
  wrote: boolean
  finish: (commit: boolean) => void
  done: Promise<void>
}

const READ_ONLY = /^\s*(SELECT|PRAGMA\s+\w+\s*(\(\s*\w+\s*\))?\s*;?\s*$|EXPLAIN)/i
/** Committed session ids are kept this long (a follower checks within seconds of a handover). */
const KEEP_COMMITS_MS = 24 * 3600_000

export class TabHost {
  private readonly sessions = new Map<string, Session>()
  private readonly observers = new Map<string, () => void>()
  private readonly known = new Set<string>()
  private readonly stops: (() => void)[] = []

  constructor(
    private readonly coord: TabCoordination,
    private readonly db: LocalDatabase,
    private readonly sync: { syncNow(): Promise<void>; start(): Promise<void> },
  ) {}

  async start(): Promise<void> {
    await this.db.run((ex) => ensureCommitsTable(ex))
    this.stops.push(
      this.coord.onMessage((m) => this.receive(m)),
      this.db.addListener((tables, origin) =>
        this.coord.post({ t: 'changed', from: this.coord.selfId, tables, origin }),
      ),
    )
    this.coord.post({ t: 'owner', from: this.coord.selfId })
  }

  stop(): void {
    for (const s of this.stops.splice(0)) s()
    for (const s of this.sessions.values()) s.finish(false)
    for (const o of this.observers.values()) o()
    this.observers.clear()
  }

  private receive(m: TabMessage): void {
    if (m.t === 'hello') this.coord.post({ t: 'owner', from: this.coord.selfId })
    if (m.t !== 'req' || m.to !== this.coord.selfId) return
    this.watch(m.from)
    this.handle(m.from, m.body).then(
      (value) =>
        this.coord.post({
          t: 'res',
          from: this.coord.selfId,
          to: m.from,
          rid: m.rid,
          ok: true,
          value: value as never,
        }),
      (err: unknown) =>
        this.coord.post({ t: 'res', from: this.coord.selfId, to: m.from, rid: m.rid, ok: false, error: toWire(err) }),
    )
  }

  /** Cleans up after a tab that goes away: its open sessions roll back, its observers stop. */
  private watch(tab: string): void {
    if (this.known.has(tab)) return
    this.known.add(tab)
    this.coord.onGone(tab, () => {
      this.known.delete(tab)
      for (const s of this.sessions.values()) if (s.from === tab) s.finish(false)
      this.observers.get(tab)?.()
      this.observers.delete(tab)
    })
  }

  private async handle(from: string, b: RequestBody): Promise<unknown> {
    switch (b.kind) {
      case 'open':
        return this.open(from, b.sid)
      case 'stmt': {
        const s = this.sessions.get(b.sid)
        if (!s) throw new Error('no such session (it was rolled back)')
        const ex = await s.ex
        if (b.op !== 'all') s.wrote = true
        switch (b.op) {
          case 'all':
            if (!READ_ONLY.test(b.sql)) s.wrote = true
            return ex.all(b.sql, b.params)
          case 'run':
            return (await ex.run(b.sql, b.params)).changes
          case 'exec':
            return ex.exec(b.sql)
          case 'runMany': {
            let n = 0
            if (ex.runMany) n = (await ex.runMany(b.sql, b.paramLists)).changes
            else for (const p of b.paramLists) n += (await ex.run(b.sql, p)).changes
            return n
          }
        }
        break
      }
      case 'end': {
        const s = this.sessions.get(b.sid)
        if (!s) throw new Error('no such session (it was rolled back)')
        s.finish(b.commit)
        return s.done
      }
      case 'committed':
        return this.db.run(
          async (ex) => (await ex.all(`SELECT 1 FROM ${COMMITS_TABLE} WHERE id = ?`, [b.sid])).length > 0,
        )
      case 'observe': {
        this.observers.get(from)?.()
        this.observers.set(from, this.db.observe(b.tables))
        return null
      }
      case 'syncNow':
        return this.sync.syncNow()
      case 'start':
        return this.sync.start()
    }
  }

  /** Starts a transaction for a remote session; resolves once it has begun. */
  private open(from: string, sid: string): Promise<null> {
    let finish!: (commit: boolean) => void
    const decided = new Promise<boolean>((r) => {
      finish = r
    })
    let began!: (ex: SqliteExecutor) => void
    let failed!: (err: unknown) => void
    const ex = new Promise<SqliteExecutor>((resolve, reject) => {
      began = resolve
      failed = reject
    })
    ex.catch(() => {})
    const s: Session = { from, ex, wrote: false, finish, done: Promise.resolve() }
    this.sessions.set(sid, s)
    s.done = this.db
      .transaction(async (tx) => {
        began(tx)
        if (!(await decided)) throw new RolledBack()
        // Recorded in the same transaction: after a handover the follower can learn that this commit happened.
        if (s.wrote) {
          const now = Date.now()
          await tx.run(`INSERT INTO ${COMMITS_TABLE} (id, at) VALUES (?, ?)`, [sid, now])
          await tx.run(`DELETE FROM ${COMMITS_TABLE} WHERE at < ?`, [now - KEEP_COMMITS_MS])
        }
      })
      .catch((err: unknown) => {
        if (!(err instanceof RolledBack)) throw err
      })
      .finally(() => this.sessions.delete(sid))
    s.done.catch(failed)
    return ex.then(() => null)
  }
}

class RolledBack extends Error {}
