// A light protocol client for the fan-out bench: register → snapshot, then one live event stream
// (`GET /sync/events`); every poke pulls until caught up. Raw node:http on keep-alive agents, so a thousand of them
// fit in one process. It only reports which tagged rows it has pulled, and when.
import http from 'node:http'

/** One agent for the long-lived event streams, one for request/response (keep-alive, unbounded sockets). */
const streamAgent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })
const callAgent = new http.Agent({ keepAlive: true, maxSockets: 256 })

// Protocol JSON, read field by field.
type Json = any

function post(base: URL, user: string, route: string, body: unknown): Promise<Json> {
  const data = Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        path: route,
        method: 'POST',
        agent: callAgent,
        headers: { 'content-type': 'application/json', 'content-length': data.length, 'x-user-id': user },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          if (res.statusCode !== 200) reject(new Error(`${route}: HTTP ${res.statusCode} ${text.slice(0, 200)}`))
          else resolve(JSON.parse(text))
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(data)
  })
}

export class LightClient {
  #pair = { schema_version: 0, schema_hash: '' }
  #checkpoint = 0
  #pulling: Promise<void> | null = null
  #again = false
  #req: http.ClientRequest | null = null
  pulls = 0
  /** Duration of every pull request (ms). */
  readonly pullMs: number[] = []

  constructor(
    readonly base: URL,
    readonly user: string,
    readonly clientId: string,
    /** Called with every tag (a `fan-…` value) in the pulled rows. */
    readonly onTag: (tag: string) => void,
  ) {}

  async bootstrap(): Promise<void> {
    const reg = await post(this.base, this.user, '/sync/register', {
      client_id: this.clientId,
      platform: 'bench',
      app_version: '1.0.0',
      schema_version: 0,
      schema_hash: '',
    })
    this.#pair = { schema_version: reg.schema_version, schema_hash: reg.schema_hash }
    let cursor: Json = null
    for (;;) {
      const s = await post(this.base, this.user, '/sync/snapshot', {
        client_id: this.clientId,
        cursor,
        limit: 1000,
        ...this.#pair,
      })
      this.#checkpoint = s.checkpoint
      if (!s.has_more) break
      cursor = s.cursor
    }
  }

  /** Opens the event stream; resolves once `ready` arrived. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = http.get(
        {
          host: this.base.hostname,
          port: this.base.port,
          path: `/sync/events?client_id=${encodeURIComponent(this.clientId)}&checkpoint=${this.#checkpoint}`,
          agent: streamAgent,
          headers: { 'x-user-id': this.user, accept: 'text/event-stream' },
        },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`events: HTTP ${res.statusCode}`))
          let buf = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            buf += chunk
            let i = buf.indexOf('\n\n')
            while (i >= 0) {
              const block = buf.slice(0, i)
              buf = buf.slice(i + 2)
              if (block.includes('event: ready')) resolve()
              else if (block.includes('event: poke')) this.pull()
              i = buf.indexOf('\n\n')
            }
          })
          res.on('error', () => {})
        },
      )
      req.on('error', reject)
      this.#req = req
    })
  }

  /** Pulls until caught up; a poke during a pull runs one more round right after it. */
  pull(): void {
    if (this.#pulling) {
      this.#again = true
      return
    }
    this.#pulling = (async () => {
      do {
        this.#again = false
        for (;;) {
          const t0 = performance.now()
          const p = await post(this.base, this.user, '/sync/pull', {
            client_id: this.clientId,
            checkpoint: this.#checkpoint,
            limit: 1000,
            ...this.#pair,
          })
          this.pulls++
          this.pullMs.push(performance.now() - t0)
          for (const c of p.changes as Json[]) {
            const tag = c.data?.ship_address ?? c.data?.name
            if (typeof tag === 'string' && tag.startsWith('fan-')) this.onTag(tag)
          }
          if (p.checkpoint > this.#checkpoint) this.#checkpoint = p.checkpoint
          if (!p.has_more) break
        }
      } while (this.#again)
    })()
      .catch((err) => console.error(`light client ${this.clientId}: ${(err as Error).message}`))
      .finally(() => {
        this.#pulling = null
      })
  }

  close(): void {
    this.#req?.destroy()
  }
}

export function closeAgents(): void {
  streamAgent.destroy()
  callAgent.destroy()
}
