/**
 * Tab sharing with deterministic failures: an in-memory TabCoordination (the browser one is exercised in
 * tabs.web.test.ts) over one SQLite file, where the test decides which message is lost and when a tab dies.
 */
import path from 'node:path'
import { JsonDecimal } from '@synchro/protocol'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { cleanupTempDirs, tempDir, waitFor } from '../../test/helpers.js'
import { SynchroClient } from '../client.js'
import type { SynchroClientConfig } from '../config.js'
import { betterSqlite3Driver } from '../drivers/better-sqlite3/index.js'
import type { SyncEngine } from '../sync/engine.js'
import type { FetchLike } from '../sync/transport.js'
import type { TabCoordination, TabMessage } from './types.js'

afterAll(cleanupTempDirs)

class Bus {
  readonly members = new Map<string, MemTab>()
  /** Returns true to lose a message. */
  drop: (m: TabMessage) => boolean = () => false
}

class MemTab implements TabCoordination {
  private owner = false
  private readonly ownerCbs: (() => void)[] = []
  private readonly handlers = new Set<(m: TabMessage) => void>()
  readonly goneCbs: (() => void)[] = []
  readonly raw: Database.Database

  constructor(
    readonly selfId: string,
    private readonly bus: Bus,
    file: string,
  ) {
    bus.members.set(selfId, this)
    this.raw = new Database(file)
    this.raw.pragma('busy_timeout = 5000')
  }

  isOwner = () => this.owner
  onOwner(cb: () => void): void {
    if (this.owner) cb()
    else this.ownerCbs.push(cb)
  }
  becomeOwner(): void {
    this.owner = true
    for (const cb of this.ownerCbs.splice(0)) cb()
  }
  post(m: TabMessage): void {
    if (this.bus.drop(m)) return
    for (const t of this.bus.members.values()) if (t !== this) setTimeout(() => t.deliver(m), 0)
  }
  deliver(m: TabMessage): void {
    for (const h of this.handlers) h(m)
  }
  onMessage(cb: (m: TabMessage) => void): () => void {
    this.handlers.add(cb)
    return () => this.handlers.delete(cb)
  }
  onGone(id: string, cb: () => void): void {
    this.bus.members.get(id)?.goneCbs.push(cb)
  }
  /** A crash: gone from the bus, its connection closed (SQLite rolls back what it had not committed). */
  die(): void {
    this.bus.members.delete(this.selfId)
    this.handlers.clear()
    if (this.raw.inTransaction) this.raw.exec('ROLLBACK')
    this.raw.close()
    for (const cb of this.goneCbs.splice(0)) cb()
  }

  client(over: Partial<SynchroClientConfig> = {}): SynchroClient {
    const driver = { ...betterSqlite3Driver(this.raw), tabs: this as TabCoordination }
    return new SynchroClient({
      driver,
      serverURL: 'http://127.0.0.1:9',
      userID: 'u',
      clientID: 'c',
      appVersion: '1',
      ...over,
    })
  }
}

async function setup() {
  const file = path.join(tempDir(), 'shared.sqlite')
  const bus = new Bus()
  const a = new MemTab('a', bus, file)
  const b = new MemTab('b', bus, file)
  a.becomeOwner()
  const ca = a.client()
  const cb = b.client()
  await ca.execute('CREATE TABLE counter (n INTEGER NOT NULL)')
  await ca.execute('INSERT INTO counter VALUES (0)')
  // b knows the owner once a's host has announced itself.
  expect(await cb.query('SELECT n FROM counter')).toEqual([{ n: 0 }])
  return { bus, a, b, ca, cb }
}

/** `setup()` plus more tabs (`names`) that know the owner. */
async function setupMore<N extends string>(...names: N[]) {
  const s = await setup()
  const file = s.a.raw.name
  const tabs = {} as Record<N, { tab: MemTab; client: SynchroClient }>
  for (const name of names) {
    const tab = new MemTab(name, s.bus, file)
    const client = tab.client()
    expect(await client.query('SELECT n FROM counter')).toEqual([{ n: 0 }])
    tabs[name] = { tab, client }
  }
  return { ...s, ...tabs }
}

/** Watches `SELECT n FROM counter` in `client`; `current()` is the last result, as JSON. */
async function watchCounter(client: SynchroClient): Promise<() => string> {
  let seen: unknown[] = []
  client.watch('SELECT n FROM counter', [], ['counter'], (rows) => {
    seen = rows
  })
  await waitFor(() => JSON.stringify(seen) === '[{"n":0}]', 2000, 'the initial result')
  return () => JSON.stringify(seen)
}

/** Loses a's answer to b's next `end` (or, with `request`, b's `end` itself) and runs `then` right after. */
function loseEnd(bus: Bus, then: () => void, what: 'answer' | 'request'): void {
  let endRid = -1
  bus.drop = (m) => {
    if (m.t === 'req' && m.body.kind === 'end' && m.body.commit) {
      endRid = m.rid
      if (what === 'request') setTimeout(then, 0)
      return what === 'request'
    }
    if (m.t === 'res' && m.rid === endRid && what === 'answer') {
      setTimeout(then, 0)
      return true
    }
    return false
  }
}

describe('watches across a handover', () => {
  it("a write made by the next owner during the handover reaches a third tab's watch", async () => {
    const { a, b, cb, c } = await setupMore('c')
    const seen = await watchCounter(c.client)
    a.die()
    const write = cb.execute('UPDATE counter SET n = 1')
    await new Promise((r) => setTimeout(r, 20))
    b.becomeOwner()
    await write
    expect(await c.client.query('SELECT n FROM counter')).toEqual([{ n: 1 }])
    await waitFor(() => seen() === '[{"n":1}]', 2000, "c's watch to show n = 1")
  })

  it("another tab's write retried on the next owner before the watcher re-registers reaches the watch", async () => {
    // d before c: d hears of the new owner first, so its write reaches b ahead of c's `observe`.
    const { a, b, d, c } = await setupMore('d', 'c')
    const seen = await watchCounter(c.client)
    a.die()
    const write = d.client.execute('UPDATE counter SET n = 1')
    await new Promise((r) => setTimeout(r, 20))
    b.becomeOwner()
    await write
    expect(await c.client.query('SELECT n FROM counter')).toEqual([{ n: 1 }])
    await waitFor(() => seen() === '[{"n":1}]', 2000, "c's watch to show n = 1")
  })

  it("the next owner's own watch re-runs: a change the old owner reported too late for it is not missed", async () => {
    const { bus, a, b, cb } = await setupMore()
    const seen = await watchCounter(cb)
    bus.drop = (m) => m.t === 'changed' // a's report of the write never reaches b (late, then ignored by an owner)
    await a.client().execute('UPDATE counter SET n = 1')
    a.die()
    bus.drop = () => false
    b.becomeOwner()
    await waitFor(() => seen() === '[{"n":1}]', 2000, "b's watch to show n = 1")
  })
})

/** Tabs a (the owner) and b on one file, their clients offline (every request fails; `requests` counts them). */
function offlineTabs() {
  const file = path.join(tempDir(), 'shared.sqlite')
  const bus = new Bus()
  const a = new MemTab('a', bus, file)
  const b = new MemTab('b', bus, file)
  a.becomeOwner()
  let requests = 0
  const fetch: FetchLike = async () => {
    requests++
    throw new TypeError('fetch failed')
  }
  const quiet = { fetch, syncInterval: 0, live: false, maxRetryAttempts: 0 }
  return { ca: a.client(quiet), cb: b.client(quiet), requests: () => requests }
}

describe('start() across tabs', () => {
  it("the owner's own start() after another tab's succeeds and sync runs once; a second one is ALREADY_STARTED", async () => {
    const { ca, cb, requests } = offlineTabs()
    await cb.start()
    await ca.start()
    await waitFor(() => ca.status.status === 'error', 2000, 'the first cycle to fail')
    expect(requests()).toBe(1)
    await expect(ca.start()).rejects.toMatchObject({ code: 'ALREADY_STARTED' })
    await expect(cb.start()).rejects.toMatchObject({ code: 'ALREADY_STARTED' })
    await cb.close()
    await ca.close()
  })
})

describe('conflicts across tabs', () => {
  it('the owner relays a conflict to the other tabs exactly, numbers past 2^53 included', async () => {
    const { ca, cb } = offlineTabs()
    await ca.start()
    const seen: unknown[] = []
    cb.onConflict((e) => seen.push(e))
    const event = {
      table: 'orders',
      id: 'x',
      // As the client parses server answers: integers past 2^53 as bigint, long decimals as JsonDecimal.
      serverData: {
        total_cents: 12345678901234567890n,
        price: new JsonDecimal('0.12345678901234567890123'),
        tags: ['a'],
      },
    }
    for (const l of (ca as unknown as { engine: SyncEngine }).engine.conflictListeners) l(event as never)
    await waitFor(() => seen.length === 1, 2000, 'the conflict in tab b')
    expect(seen[0]).toEqual(event)
    await cb.close()
    await ca.close()
  })
})

describe('owner lost around a commit', () => {
  it('committed, answer lost: the new owner confirms the commit and the write counts once', async () => {
    const { bus, a, b, cb } = await setup()
    loseEnd(
      bus,
      () => {
        a.die()
        b.becomeOwner()
      },
      'answer',
    )
    const res = await cb.execute('UPDATE counter SET n = n + 1')
    expect(res.rowsAffected).toBe(1)
    expect(await cb.query('SELECT n FROM counter')).toEqual([{ n: 1 }])
    await cb.close()
  })

  it('not committed (the owner died first): the session runs again on the new owner, once', async () => {
    const { bus, a, b, cb } = await setup()
    loseEnd(
      bus,
      () => {
        a.die()
        b.becomeOwner()
      },
      'request',
    )
    await cb.execute('UPDATE counter SET n = n + 1')
    expect(await cb.query('SELECT n FROM counter')).toEqual([{ n: 1 }])
    await cb.close()
  })

  it('a tab that dies inside a transaction has it rolled back; the owner is not left locked', async () => {
    const { b, ca, cb } = await setup()
    let inside!: () => void
    const entered = new Promise<void>((r) => {
      inside = r
    })
    void cb
      .writeTransaction(async (tx) => {
        await tx.execute('UPDATE counter SET n = 100')
        inside()
        await new Promise(() => {}) // b never finishes: it dies here
      })
      .catch(() => {})
    await entered
    b.die()
    await ca.execute('UPDATE counter SET n = n + 1')
    await waitFor(async () => (await ca.query<{ n: number }>('SELECT n FROM counter'))[0]?.n === 1)
    await ca.close()
  })
})
