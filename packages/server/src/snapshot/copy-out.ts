import type pg from 'pg'

/** Receive buffers kept for the next reads: at most this many, none larger than KEEP_BYTES. */
const SPARES = 2
const KEEP_BYTES = 16 * 1024 * 1024
const spare: Uint8Array[] = []

/**
 * The output of `COPY (…) TO STDOUT` run on `db` as one simple-protocol query (values inlined), handed to `use` in one
 * buffer that is valid only during that call (synchronous: the buffer is reused once it returns); resolves to what
 * `use` returns. Each CopyData message is copied in as it arrives: node-pg's message buffers are views of its receive
 * buffer, which it reuses. The buffer then goes back to a small pool: a background read of 10k rows of the benchmark's
 * table is 3.2 MB of text, and a buffer grown afresh (256 kB, doubled) for each read allocated and zeroed ≈ 8 MB.
 * Rejects with the statement's error (node-pg ends the query there: no ReadyForQuery reaches it then).
 */
export async function copyOut<T>(db: pg.ClientBase, sql: string, use: (text: Uint8Array) => T): Promise<T> {
  let buf = spare.pop() ?? new Uint8Array(256 * 1024)
  try {
    const used = await new Promise<number>((resolve, reject) => {
      let n = 0
      const query = {
        submit(connection: { query(text: string): void }) {
          connection.query(sql)
        },
        handleCopyData(msg: { chunk: Uint8Array }) {
          const chunk = msg.chunk
          if (n + chunk.length > buf.length) {
            const grown = new Uint8Array(Math.max(buf.length * 2, n + chunk.length))
            grown.set(buf.subarray(0, n))
            buf = grown
          }
          buf.set(chunk, n)
          n += chunk.length
        },
        handleError(err: unknown) {
          reject(err)
        },
        handleReadyForQuery() {
          resolve(n)
        },
        handleCommandComplete() {},
        handleRowDescription() {},
        handleDataRow() {},
        handleEmptyQuery() {},
        handlePortalSuspended() {},
        handleCopyInResponse() {},
      }
      ;(db as unknown as { query(q: unknown): void }).query(query)
    })
    return use(buf.subarray(0, used))
  } finally {
    if (spare.length < SPARES && buf.length <= KEEP_BYTES) spare.push(buf)
  }
}
