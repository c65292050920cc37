// A light protocol client for the fan-out bench: register → snapshot, then one live event stream
// (`GET /sync/events?frames=1`); a data frame that starts where it stands is applied (its tags recorded), anything
// else — a poke, a gap — pulls until caught up, with the SDK's own position rules (client sync/frames.ts). Raw
// node:http on keep-alive agents, so a thousand of them fit in one process. It only reports which tagged rows it
// has received, and when.
import http from 'node:http'
import { parseJsonLossless } from '@synchro/protocol'
import { LivePosition, parseFrame } from '../../packages/client/src/sync/frames.js'

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
  readonly #position = new LivePosition()
  pulls = 0
  /** Data frames applied from the stream (no pull needed). */
  frames = 0
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
          path: `/sync/events?client_id=${encodeURIComponent(this.clientId)}&checkpoint=${this.#checkpoint}&frames=1`,
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
              else if (block.includes('event: poke')) {
                this.#position.hear(JSON.parse(block.slice(block.indexOf('data: ') + 6)).seq)
                this.pull()
              } else if (block.includes('event: page')) this.#frame(block.slice(block.indexOf('data: ') + 6))
              i = buf.indexOf('\n\n')
            }
          })
          res.on('error', () => {})
        },
      )
      req.on('error', reject)
      this.#req = req
      this.#position.opened(this.#checkpoint)
    })
  }

  #frame(data: string): void {
    const f = parseFrame(parseJsonLossless(data))
    const decision = f ? this.#position.decide(f) : 'pull'
    if (f) this.#position.hear(f.to)
    if (decision === 'skip') return
    if (!f || decision === 'pull' || this.#pulling) {
      this.pull()
      return
    }
    this.frames++
    this.#tags(f.changes as Json[])
    this.#checkpoint = f.to
    this.#position.applied(f)
  }

  #tags(changes: Json[]): void {
    for (const c of changes) {
      const tag = c.data?.ship_address ?? c.data?.name
      if (typeof tag === 'string' && tag.startsWith('fan-')) this.onTag(tag)
    }
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
        const heardAtStart = this.#position.heard
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
          this.#tags(p.changes as Json[])
          if (p.checkpoint > this.#checkpoint) this.#checkpoint = p.checkpoint
          if (!p.has_more) {
            this.#position.pulled(this.#checkpoint, heardAtStart)
            break
          }
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
