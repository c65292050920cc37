import type pg from 'pg'

/** The parts of pg's internal Connection a COPY FROM STDIN needs (as pg-copy-streams uses them). */
interface CopyConnection {
  query(text: string): void
  sendCopyFromChunk(chunk: Buffer): void
  endCopyFrom(): void
}

/**
 * `COPY … FROM STDIN` with the whole payload in memory: a pg "submittable" (the interface pg-copy-streams uses),
 * so the statement queues on the client like any query and fails like one (server error → rejected promise, the
 * transaction is then aborted). Resolves with the number of rows copied.
 *
 * The data follows the statement at once instead of after the server's CopyInResponse: one round trip through
 * this process's event loop less per COPY (the capture's writes wait on it while the next batch is computed, up
 * to tens of ms at the 99th percentile). The server reads the data once it is in copy mode; should the statement
 * fail before that, it drops the data and the CopyDone it then receives (protocol: "Accept but ignore these
 * messages").
 */
export function copyFrom(db: pg.ClientBase, sql: string, data: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    let settled = false
    let rows = 0
    const settle = (err?: Error) => {
      if (settled) return
      settled = true
      if (err) reject(err)
      else resolve(rows)
    }
    const submittable = {
      submit(connection: CopyConnection) {
        connection.query(sql)
        // CopyData messages are limited to 1 GiB; stay far below and keep each write moderate.
        const step = 1 << 20
        for (let o = 0; o < data.length; o += step) connection.sendCopyFromChunk(data.subarray(o, o + step))
        connection.endCopyFrom()
      },
      // The data went with the statement.
      handleCopyInResponse() {},
      handleCommandComplete(msg: { text?: string }) {
        const m = /^COPY (\d+)/.exec(msg.text ?? '')
        if (m) rows = Number(m[1])
      },
      handleReadyForQuery() {
        settle()
      },
      handleError(err: Error) {
        settle(err)
      },
      // Never sent for COPY FROM; present because pg may call them on any active query.
      handleRowDescription() {},
      handleDataRow() {},
      handleEmptyQuery() {},
      handlePortalSuspended() {},
      handleCopyData() {},
    }
    ;(db as unknown as { query(q: object): void }).query(submittable)
  })
}

const NEEDS_ESCAPE = /[\\\n\r\t]/
const ESCAPES = /[\\\n\r\t]/g
const escapeChar = (ch: string): string => (ch === '\\' ? '\\\\' : ch === '\n' ? '\\n' : ch === '\r' ? '\\r' : '\\t')

/** A value for COPY's text format (tab-separated, `\N` is NULL; callers never pass NULL here). */
export function copyText(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPES, escapeChar) : s
}

/**
 * COPY text built into a growing Buffer: the rows wait for their batch's write off the JS heap (a string built with
 * `+=` keeps one cons-string node per part alive until then, for the young-generation GC to copy and promote).
 * Lines are gathered in a short string first and encoded a few kilobytes at a time (one Buffer#write per ~40 rows).
 */
export class CopyBuffer {
  #buf: Buffer
  #len = 0
  #pending = ''

  constructor(initial = 2048) {
    this.#buf = Buffer.allocUnsafe(initial)
  }

  /** Appends `line` (UTF-8, as Buffer.from would encode it). */
  add(line: string): void {
    this.#pending += line
    if (this.#pending.length >= FLUSH_CHARS) this.#flush()
  }

  /** Characters or bytes so far (0 only when nothing was added). */
  get length(): number {
    return this.#len + this.#pending.length
  }

  /** The text so far (a view: valid until the next add). */
  bytes(): Buffer {
    this.#flush()
    return this.#buf.subarray(0, this.#len)
  }

  #flush(): void {
    const s = this.#pending
    if (s.length === 0) return
    this.#pending = ''
    const max = s.length * 3
    if (this.#len + max > this.#buf.length) {
      const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + max))
      this.#buf.copy(next, 0, 0, this.#len)
      this.#buf = next
    }
    this.#len += this.#buf.write(s, this.#len)
  }
}

const FLUSH_CHARS = 4096
