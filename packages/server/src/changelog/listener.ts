import pg from 'pg'
import type { Logger } from '../util/log.js'
import { safeErrorFacts } from '../util/log.js'

/** The channel the capture leader NOTIFYs on when it commits a changelog batch. */
export const CHANGELOG_CHANNEL = 'synchro_changelog'

/**
 * NOTIFY payloads must stay under 8 000 bytes (PostgreSQL's limit); above this many bytes of bucket list the
 * payload carries the head only, which means "anything may have changed".
 */
const MAX_BUCKETS_JSON = 7_800

/**
 * The payload of one batch's notification: `{"seq":<head>,"b":[buckets]}`, or `{"seq":<head>,"b":null}` when the
 * bucket list would not fit. Built as SQL text around the head, which only the writing transaction knows.
 */
export function notifyBuckets(buckets: Iterable<string>): string {
  const json = JSON.stringify([...buckets])
  return json.length > MAX_BUCKETS_JSON ? 'null' : json
}

/** One decoded notification: the new changelog head and the buckets that got entries (undefined: any bucket). */
export interface ChangelogPoke {
  seq: number
  buckets: ReadonlySet<string> | undefined
}

/** Parses a payload; undefined for anything malformed (some other writer on the channel: ignored). */
export function parsePoke(payload: string | undefined): ChangelogPoke | undefined {
  try {
    const p = JSON.parse(payload ?? '') as { seq?: unknown; b?: unknown }
    if (typeof p.seq !== 'number' || !Number.isSafeInteger(p.seq)) return undefined
    if (p.b === null || p.b === undefined) return { seq: p.seq, buckets: undefined }
    if (!Array.isArray(p.b) || !p.b.every((x) => typeof x === 'string')) return undefined
    return { seq: p.seq, buckets: new Set(p.b as string[]) }
  } catch {
    return undefined
  }
}

const MIN_BACKOFF_MS = 100
const MAX_BACKOFF_MS = 5_000

/**
 * One dedicated connection (outside the pool, which may hand connections to anyone) that LISTENs on the changelog
 * channel. Reconnects with capped exponential backoff; `onUp` fires after every (re)connect once LISTEN is active —
 * notifications sent while it was down are lost, so the owner re-reads the head then.
 */
export class ChangelogListener {
  #client: pg.Client | undefined
  #timer: NodeJS.Timeout | undefined
  #failures = 0
  #stopped = false
  #up = false

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly handlers: { onPoke: (p: ChangelogPoke) => void; onUp: () => void; onDown: () => void },
    private readonly logger: Logger,
  ) {}

  /** LISTEN is active on a live connection. */
  get up(): boolean {
    return this.#up
  }

  start(): void {
    this.#stopped = false
    void this.#connect()
  }

  stop(): void {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    const c = this.#client
    this.#client = undefined
    this.#up = false
    c?.end().catch(() => {})
  }

  async #connect(): Promise<void> {
    if (this.#stopped || this.#client) return
    const client = new pg.Client({ ...this.config, application_name: 'synchro-live' })
    this.#client = client
    client.on('notification', (m) => {
      if (m.channel !== CHANGELOG_CHANNEL) return
      const poke = parsePoke(m.payload)
      if (poke) this.handlers.onPoke(poke)
    })
    client.on('error', (err) => this.#lost(client, err))
    client.on('end', () => this.#lost(client))
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANGELOG_CHANNEL}`)
    } catch (err) {
      this.#lost(client, err as Error)
      return
    }
    if (this.#client !== client) return
    this.#failures = 0
    this.#up = true
    this.handlers.onUp()
  }

  #lost(client: pg.Client, err?: Error): void {
    if (this.#client !== client) return
    this.#client = undefined
    const was = this.#up
    this.#up = false
    client.end().catch(() => {})
    if (this.#stopped) return
    if (was) this.handlers.onDown()
    this.#failures++
    const delay = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (this.#failures - 1))
    this.logger.warn(
      { err: err ? safeErrorFacts(err, false) : undefined, retryInMs: delay },
      'live: LISTEN connection lost; reconnecting',
    )
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.#connect()
    }, delay)
    this.#timer.unref()
  }
}
