import type pg from 'pg'

/**
 * The output of `COPY (…) TO STDOUT` run on `db` as one simple-protocol query (values inlined), in one buffer. Each
 * CopyData message is copied in as it arrives: node-pg's message buffers are views of its receive buffer, which it
 * reuses. Rejects with the statement's error (node-pg ends the query there: no ReadyForQuery reaches it then).
 */
export function copyOut(db: pg.ClientBase, sql: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let buf = new Uint8Array(256 * 1024)
    let used = 0
    const query = {
      submit(connection: { query(text: string): void }) {
        connection.query(sql)
      },
      handleCopyData(msg: { chunk: Uint8Array }) {
        const chunk = msg.chunk
        if (used + chunk.length > buf.length) {
          const grown = new Uint8Array(Math.max(buf.length * 2, used + chunk.length))
          grown.set(buf.subarray(0, used))
          buf = grown
        }
        buf.set(chunk, used)
        used += chunk.length
      },
      handleError(err: unknown) {
        reject(err)
      },
      handleReadyForQuery() {
        resolve(buf.subarray(0, used))
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
}
