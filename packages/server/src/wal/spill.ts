import { closeSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, unlinkSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Change, SpilledChanges } from '../changelog/changes.js'

let serial = 0

/** Write buffer of a spill file: records are gathered here and written in blocks of this size. */
const BLOCK = 1 << 20

/** Turns one recorded pgoutput payload into a change (or null for relation and other non-row messages). */
export type SpillDecoder = (payload: Buffer) => Change | null

/**
 * The messages of one streamed in-progress transaction, appended to a file as they arrive (PostgreSQL sends a big
 * transaction in blocks before it commits) and read back in parts once it commits, so its size never shows in the
 * heap. Each record is `[u32 subxid][u32 length][payload]`; changes of subtransactions that abort are skipped on read.
 */
export class SpillFile implements SpilledChanges {
  readonly #path: string
  #fd: number | undefined
  #buf = Buffer.allocUnsafe(BLOCK)
  #used = 0
  #written = 0
  #size = 0
  readonly #aborted = new Set<number>()
  #decode: SpillDecoder | undefined

  /** @param head changes already decoded in memory: read back first. */
  constructor(
    dir: string,
    xid: number,
    /** Received in stream blocks while in progress (else: sent whole at commit, past the spill threshold). */
    readonly streamed: boolean,
    readonly head: Change[] = [],
  ) {
    this.#path = path.join(dir, `xid-${xid}-${++serial}`)
    this.#fd = openSync(this.#path, 'w+', 0o600)
    this.#size = head.length
  }

  /** Row messages recorded (including those of subtransactions that later aborted). */
  get size(): number {
    return this.#size
  }

  /** Bytes recorded so far. */
  get bytes(): number {
    return this.#written + this.#used
  }

  append(subxid: number, payload: Buffer, isRow: boolean): void {
    const need = 8 + payload.length
    if (this.#used + need > this.#buf.length) this.#flush()
    if (need > this.#buf.length) {
      const head = Buffer.allocUnsafe(8)
      head.writeUInt32BE(subxid, 0)
      head.writeUInt32BE(payload.length, 4)
      this.#writeAll(head)
      this.#writeAll(payload)
    } else {
      this.#buf.writeUInt32BE(subxid, this.#used)
      this.#buf.writeUInt32BE(payload.length, this.#used + 4)
      payload.copy(this.#buf, this.#used + 8)
      this.#used += need
    }
    if (isRow) this.#size++
  }

  /** A subtransaction rolled back: its changes (already recorded) are skipped when read. */
  abortSubtransaction(subxid: number): void {
    this.#aborted.add(subxid)
  }

  /** The transaction committed: no more records; `decode` turns them into changes when read. */
  seal(decode: SpillDecoder): void {
    this.#flush()
    this.#buf = Buffer.alloc(0)
    this.#decode = decode
  }

  *parts(max: number): Iterable<Change[]> {
    const fd = this.#fd
    const decode = this.#decode
    if (fd === undefined || !decode) throw new Error('spill file read before it was sealed or after it was freed')
    let buf = Buffer.allocUnsafe(BLOCK)
    let start = 0
    let end = 0
    let pos = 0
    let part: Change[] = []
    for (let i = 0; i < this.head.length; i += max) {
      const h = this.head.slice(i, i + max)
      if (h.length === max) yield h
      else part = h
    }
    for (;;) {
      // Keep at least one whole record in [start, end).
      if (end - start < 8 || end - start < 8 + buf.readUInt32BE(start + 4)) {
        const want = end - start >= 8 ? 8 + buf.readUInt32BE(start + 4) : 8
        if (want > buf.length) {
          const bigger = Buffer.allocUnsafe(want)
          buf.copy(bigger, 0, start, end)
          buf = bigger
        } else buf.copy(buf, 0, start, end)
        end -= start
        start = 0
        const n = readSync(fd, buf, end, buf.length - end, pos)
        pos += n
        end += n
        if (n === 0) {
          if (end !== 0) throw new Error(`spill file ${this.#path} ends inside a record`)
          break
        }
        continue
      }
      const subxid = buf.readUInt32BE(start)
      const len = buf.readUInt32BE(start + 4)
      const payload = buf.subarray(start + 8, start + 8 + len)
      start += 8 + len
      if (this.#aborted.has(subxid)) continue
      const change = decode(payload)
      if (!change) continue
      part.push(change)
      if (part.length >= max) {
        yield part
        part = []
      }
    }
    if (part.length > 0) yield part
  }

  dispose(): void {
    if (this.#fd === undefined) return
    closeSync(this.#fd)
    this.#fd = undefined
    this.head.length = 0
    this.#buf = Buffer.alloc(0)
    try {
      unlinkSync(this.#path)
    } catch {
      // Already gone with its directory.
    }
  }

  #flush(): void {
    if (this.#used === 0) return
    this.#writeAll(this.#buf.subarray(0, this.#used))
    this.#used = 0
  }

  #writeAll(b: Buffer): void {
    if (this.#fd === undefined) throw new Error('spill file written after it was freed')
    let o = 0
    while (o < b.length) o += writeSync(this.#fd, b, o, b.length - o, this.#written + o)
    this.#written += b.length
  }
}

/**
 * A private directory for one session's spill files, removed with everything in it when the session ends. Named
 * after the process (`synchro-wal-<pid>-…`): a process that was killed cannot remove its own, so each new one removes
 * those of processes that no longer exist.
 */
export class SpillDirectory {
  readonly path: string

  constructor(parent = tmpdir()) {
    removeOrphans(parent)
    this.path = mkdtempSync(path.join(parent, `synchro-wal-${process.pid}-`))
  }

  remove(): void {
    rmSync(this.path, { recursive: true, force: true })
  }
}

/** Removes spill directories left by processes that are gone (a live or reused pid keeps its directory). */
export function removeOrphans(parent: string): void {
  let names: string[]
  try {
    names = readdirSync(parent)
  } catch {
    return
  }
  for (const name of names) {
    const m = /^synchro-wal-(\d+)-/.exec(name)
    if (!m || isAlive(Number(m[1]))) continue
    rmSync(path.join(parent, name), { recursive: true, force: true })
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as { code?: string }).code === 'EPERM'
  }
}
