/**
 * Browser implementation of `TabCoordination`: Web Locks elect the owner tab (the lock is held for the tab's life
 * and released by the browser when the tab closes or crashes), a BroadcastChannel carries messages, and every tab
 * holds a lock named after its own id so that others can wait for it to disappear.
 */
import type { TabCoordination, TabMessage } from '../../tabs/types.js'

interface LockManagerLike {
  request(name: string, options: { signal?: AbortSignal }, cb: () => Promise<unknown> | unknown): Promise<unknown>
}

function locks(): LockManagerLike {
  const l = (globalThis.navigator as { locks?: LockManagerLike } | undefined)?.locks
  if (!l) throw new Error('the Web Locks API (navigator.locks) is required to share the database between tabs')
  return l
}

export class BrowserTabs implements TabCoordination {
  readonly selfId = crypto.randomUUID()
  private owner = false
  private readonly ownerCbs: (() => void)[] = []
  private readonly channel: BroadcastChannel
  private readonly abort = new AbortController()
  private releaseOwner: (() => void) | null = null
  private releaseSelf: (() => void) | null = null
  /** Resolves once this tab holds its own liveness lock (before it talks to anybody). */
  readonly ready: Promise<void>

  constructor(private readonly name: string) {
    this.channel = new BroadcastChannel(`synchro:${name}`)
    this.ready = this.hold(`synchro:${name}:tab:${this.selfId}`, (release) => {
      this.releaseSelf = release
    })
  }

  /** Queues for the owner lock; `onWin` runs when this tab gets it (the lock is then held until `close`). */
  elect(onWin: () => Promise<void>): void {
    void this.ready
      .then(() =>
        this.hold(`synchro:${this.name}:owner`, (release) => {
          this.releaseOwner = release
          onWin().then(
            () => {
              this.owner = true
              for (const cb of this.ownerCbs.splice(0)) cb()
            },
            (err: unknown) => {
              // Could not open the database: let another tab try (and say why, loudly).
              console.error('[synchro] this tab won the database lock but could not open it', err)
              release()
            },
          )
        }),
      )
      .catch(() => {})
  }

  /** Requests `lock` and keeps it until the returned release function is called (or the tab goes away). */
  private hold(lock: string, granted: (release: () => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      locks()
        .request(lock, { signal: this.abort.signal }, () => {
          return new Promise<void>((release) => {
            granted(release)
            resolve()
          })
        })
        .catch(reject)
    })
  }

  isOwner(): boolean {
    return this.owner
  }

  onOwner(cb: () => void): void {
    if (this.owner) cb()
    else this.ownerCbs.push(cb)
  }

  post(msg: TabMessage): void {
    this.channel.postMessage(msg)
  }

  onMessage(cb: (msg: TabMessage) => void): () => void {
    const l = (e: MessageEvent<TabMessage>) => cb(e.data)
    this.channel.addEventListener('message', l)
    return () => this.channel.removeEventListener('message', l)
  }

  onGone(id: string, cb: () => void): void {
    locks()
      .request(`synchro:${this.name}:tab:${id}`, { signal: this.abort.signal }, () => cb())
      .catch(() => {})
  }

  onOnline(cb: () => void): () => void {
    globalThis.addEventListener('online', cb)
    return () => globalThis.removeEventListener('online', cb)
  }

  /** Gives up ownership and leaves (another tab takes over). */
  close(): void {
    this.owner = false
    this.abort.abort()
    this.releaseOwner?.()
    this.releaseSelf?.()
    this.channel.close()
  }
}
