/**
 * The database as a tab sees it when several tabs share it: in the owner tab, the `LocalDatabase` itself; in the
 * other tabs, sessions run remotely on the owner's. A remote session is one transaction on the owner: its
 * statements are sent one by one, then `end` commits it. If the owner goes away before answering `end`, the new
 * owner is asked whether the session's id was committed (the owner records it in the same transaction): if so the
 * result stands, otherwise nothing was applied and the session runs again — never twice.
 */
import type { Row, SqliteExecutor, SqlParam } from '../driver.js'
import type { ChangeListener, LocalDatabase, WriteOrigin } from '../store/database.js'
import { OwnerLink, OwnerLostError } from './rpc.js'
import type { StatementOp, TabCoordination, TabMessage } from './types.js'

/** What SynchroClient uses of its database (LocalDatabase or SharedDatabase). */
export interface ClientDatabase
  extends Pick<LocalDatabase, 'run' | 'transaction' | 'schemaChanged' | 'observe' | 'addListener' | 'close'> {
  init(): Promise<unknown>
}

function sessionId(): string {
  return `${Date.now().toString(36)}-${crypto.randomUUID()}`
}

export class SharedDatabase implements ClientDatabase {
  readonly link: OwnerLink
  private readonly listeners = new Set<ChangeListener>()
  private readonly observed = new Map<string, number>()
  private readonly stopMessages: () => void

  constructor(
    private readonly local: LocalDatabase,
    private readonly coord: TabCoordination,
    private readonly closeDriver: () => Promise<void>,
  ) {
    this.link = new OwnerLink(coord)
    // Another tab owns it: it learns what we observe. We own it: a late `changed` of the last owner is ignored. Re-run.
    this.link.onNewOwner = (id) =>
      id === coord.selfId ? this.emit([...this.observed.keys()], 'sync') : this.sendObserved(id, true)
    this.stopMessages = coord.onMessage((m: TabMessage) => {
      // Changes committed by the owner (its own writes, other tabs' writes, sync) reach every other tab.
      if (m.t === 'changed' && !this.link.isSelfOwner) this.emit(m.tables, m.origin)
    })
  }

  private emit(tables: string[], origin: WriteOrigin): void {
    for (const l of [...this.listeners]) {
      try {
        l(tables, origin)
      } catch {
        // as in LocalDatabase: a listener's failure is its own
      }
    }
  }

  /** In the owner tab, opens the database; elsewhere waits until some tab owns it. */
  async init(): Promise<unknown> {
    const owner = await this.link.owner()
    return owner === this.coord.selfId ? this.local.init() : undefined
  }

  run<T>(fn: (ex: SqliteExecutor) => Promise<T>, origin: WriteOrigin = 'local'): Promise<T> {
    return this.session(fn, (f) => this.local.run(f, origin))
  }

  transaction<T>(fn: (tx: SqliteExecutor) => Promise<T>, origin: WriteOrigin = 'local'): Promise<T> {
    return this.session(fn, (f) => this.local.transaction(f, origin))
  }

  schemaChanged(): void {
    this.local.schemaChanged()
  }

  observe(tables: readonly string[]): () => void {
    // Locally too: this tab may become the owner later.
    const stopLocal = this.local.observe(tables)
    for (const t of tables) this.observed.set(t, (this.observed.get(t) ?? 0) + 1)
    void this.link.owner().then((id) => id !== this.coord.selfId && this.sendObserved(id))
    let done = false
    return () => {
      if (done) return
      done = true
      stopLocal()
      for (const t of tables) {
        const n = (this.observed.get(t) ?? 1) - 1
        if (n <= 0) this.observed.delete(t)
        else this.observed.set(t, n)
      }
    }
  }

  /**
   * With `rerun` (a new owner): it reports changes only to tables it knows we observe, so what it committed before
   * this request was never reported here — once the request is accepted, every observed table counts as changed.
   */
  private sendObserved(owner: string, rerun = false): void {
    const tables = [...this.observed.keys()]
    const done = () => rerun && tables.length > 0 && this.emit(tables, 'sync')
    this.link.request(owner, { kind: 'observe', tables }).then(done, () => {})
  }

  addListener(l: ChangeListener): () => void {
    const stopLocal = this.local.addListener(l)
    this.listeners.add(l)
    return () => {
      stopLocal()
      this.listeners.delete(l)
    }
  }

  async close(): Promise<void> {
    this.stopMessages()
    await this.local.close()
    // A tab that never owned the database never opened the driver through `local`; leave the election all the same.
    await this.closeDriver()
  }

  private async session<T>(
    fn: (ex: SqliteExecutor) => Promise<T>,
    locally: (fn: (ex: SqliteExecutor) => Promise<T>) => Promise<T>,
  ): Promise<T> {
    for (;;) {
      const owner = await this.link.owner()
      if (owner === this.coord.selfId) return locally(fn)
      const sid = sessionId()
      let ended = false
      let result: T
      try {
        await this.link.request(owner, { kind: 'open', sid })
        try {
          result = await fn(this.remoteExecutor(owner, sid))
        } catch (err) {
          if (err instanceof OwnerLostError) throw err
          await this.link.request(owner, { kind: 'end', sid, commit: false }).catch(() => {})
          throw err
        }
        ended = true
        await this.link.request(owner, { kind: 'end', sid, commit: true })
        return result
      } catch (err) {
        if (!(err instanceof OwnerLostError)) throw err
        if (ended && (await this.wasCommitted(sid))) return result!
        // Not applied (the owner's transaction died with it): run the session again on the next owner.
      }
    }
  }

  /** Asks the owner (whoever it is by now) whether session `sid` was committed. */
  private async wasCommitted(sid: string): Promise<boolean> {
    for (;;) {
      const owner = await this.link.owner()
      try {
        if (owner === this.coord.selfId) return await this.local.run((ex) => isCommitted(ex, sid))
        return (await this.link.request(owner, { kind: 'committed', sid })) === true
      } catch (err) {
        if (!(err instanceof OwnerLostError)) throw err
      }
    }
  }

  private remoteExecutor(owner: string, sid: string): SqliteExecutor {
    const send = (op: StatementOp) => this.link.request(owner, { kind: 'stmt', sid, ...op })
    return {
      all: async <T = Row>(sql: string, params?: readonly SqlParam[]) =>
        (await send({ op: 'all', sql, ...(params ? { params } : {}) })) as T[],
      run: async (sql, params) => ({
        changes: (await send({ op: 'run', sql, ...(params ? { params } : {}) })) as number,
      }),
      exec: async (sql) => void (await send({ op: 'exec', sql })),
      runMany: async (sql, paramLists) => ({ changes: (await send({ op: 'runMany', sql, paramLists })) as number }),
    }
  }
}

/** Sessions committed on behalf of other tabs, so that a lost answer can be checked (see the module comment). */
export const COMMITS_TABLE = '_synchro_tab_commits'

export async function ensureCommitsTable(ex: SqliteExecutor): Promise<void> {
  await ex.exec(`CREATE TABLE IF NOT EXISTS ${COMMITS_TABLE} (id TEXT PRIMARY KEY, at INTEGER NOT NULL)`)
}

export async function isCommitted(ex: SqliteExecutor, sid: string): Promise<boolean> {
  return (await ex.all(`SELECT 1 FROM ${COMMITS_TABLE} WHERE id = ?`, [sid])).length > 0
}
