/**
 * Live data frames (`event: page` on `GET /sync/events?frames=1`, docs/live-frames.md): the server sends the rows of
 * a change range (from, to] of our buckets on the stream itself, so a change reaching a thousand devices costs one
 * render instead of a thousand pulls. A frame is applied like a pull page only when we are complete up to exactly
 * `from`; anything else (a gap, a frame we already covered by pulling, another schema) falls back to a pull.
 */
import type { DeleteEntry, SyncRecord } from '@synchro/protocol'
import { withSyncLock } from '../store/database.js'
import { applyPullGroup } from './apply.js'
import type { CycleContext } from './cycle/context.js'
import type { SyncScheduler } from './scheduler.js'

export interface LiveFrame {
  from: number
  to: number
  changes: SyncRecord[]
  deletes: DeleteEntry[]
  schema_version: number
  schema_hash: string
}

/** Parses a frame's data line; undefined when it is not one (the caller pulls instead). */
export function parseFrame(data: unknown): LiveFrame | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const f = data as { [k: string]: unknown }
  const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
  if (!int(f.from) || !int(f.to) || (f.to as number) <= (f.from as number)) return undefined
  if (!Array.isArray(f.changes) || !Array.isArray(f.deletes)) return undefined
  if (!int(f.schema_version) || typeof f.schema_hash !== 'string') return undefined
  return f as unknown as LiveFrame
}

/**
 * Where we stand against the stream. `complete` is a changelog position up to which we provably hold every entry
 * of our buckets: the checkpoint we opened the stream with (the server starts its frames there), a served pull's
 * checkpoint — or, when higher, the newest head the stream had announced before that pull started (the pull saw
 * every entry up to it) — or the end of a frame we applied.
 */
export class LivePosition {
  /** Newest changelog head the stream announced (poke or frame). */
  heard = 0
  #complete: number | undefined
  #epoch = 0

  /** Changes with every `reset`: what a stream reopening reads its checkpoint in (see `opened`). */
  get epoch(): number {
    return this.#epoch
  }

  /**
   * The stream (re)opened with our stored checkpoint, read in `epoch`: the server's frames start there. A checkpoint
   * read before a reset, or a claim made while a rebuild runs (undone by the reset that ends it), names the data
   * the rebuild replaces: frames from it may be older than the snapshot, and applied after it they would bring back
   * row states no pull repairs (the rebuild stored a checkpoint past them).
   */
  opened(checkpoint: number, epoch = this.#epoch): void {
    if (epoch === this.#epoch) this.#complete = checkpoint
  }

  hear(seq: number): void {
    if (seq > this.heard) this.heard = seq
  }

  /** A pull that started when `heardAtStart` was the newest head ended caught up at `checkpoint`. */
  pulled(checkpoint: number, heardAtStart: number): void {
    this.#complete = Math.max(this.#complete ?? 0, checkpoint, heardAtStart)
  }

  /** A snapshot rebuild starts or ends (done or not): the data is being replaced, unknown until the next pull. */
  reset(): void {
    this.#complete = undefined
    this.#epoch++
  }

  /** `apply` when we are complete up to exactly `from`; `skip` when we already hold all of it; else `pull`. */
  decide(f: LiveFrame): 'apply' | 'skip' | 'pull' {
    if (this.#complete === undefined) return 'pull'
    if (this.#complete >= f.to) return 'skip'
    return this.#complete === f.from ? 'apply' : 'pull'
  }

  applied(f: LiveFrame): void {
    this.#complete = f.to
  }
}

/**
 * A live data frame: applied like a pull page when we are complete up to exactly its start, in the cycle slot (a
 * cycle requested meanwhile waits for it); otherwise, or if applying fails, a normal cycle pulls the range. A frame
 * arriving during a cycle (often our own push, whose changes it brings back) is decided again when that cycle ends —
 * usually covered by it — rather than queueing one more full cycle; frames deferred on one cycle resume in order.
 */
export function onLiveFrame(
  frame: LiveFrame,
  ctx: CycleContext & { readonly position: LivePosition },
  scheduler: SyncScheduler,
  started: () => boolean,
): void {
  const position = ctx.position
  const decision = position.decide(frame)
  position.hear(frame.to)
  if (decision === 'skip' || !started()) return
  const running = scheduler.current
  if (decision === 'apply' && running) {
    void running.catch(() => {}).then(() => onLiveFrame(frame, ctx, scheduler, started))
    return
  }
  const schema = ctx.schema
  const usable =
    decision === 'apply' &&
    ctx.connected &&
    schema !== null &&
    schema.version === frame.schema_version &&
    schema.hash === frame.schema_hash
  // The stored pull checkpoint does not move with a frame (checkpoint 0 never raises it): frames only speed delivery
  // up, and the next pull (the syncInterval timer at the latest) re-reads the range from the changelog, so an entry
  // a frame ever lacked still arrives. The stream position (LivePosition) moves, so frames keep chaining.
  const page = { changes: frame.changes, deletes: frame.deletes, checkpoint: 0 }
  const applied =
    usable &&
    scheduler.occupy(() =>
      ctx.db
        .transaction((tx) => withSyncLock(tx, () => applyPullGroup(tx, schema.tables, [page])), 'sync')
        .then(
          () => position.applied(frame),
          () => {
            if (started()) scheduler.request().catch(() => {})
          },
        ),
    )
  if (!applied) scheduler.request().catch(() => {})
}
