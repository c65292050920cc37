import type pg from 'pg'
import { CommitMiss } from './commit.js'

type Query = pg.PoolClient['query']

/**
 * A transaction's opening statements (BEGIN, settings, the push gate) sent in the round trip of the first statement the
 * push runs on the connection, instead of a round trip of their own (gated-tx.ts says when COMMIT joins them). While the opening is pending, `db.query` is shadowed on the connection object itself
 * (the prepared-statement bookkeeping of roundtrip.ts is keyed by that object, so a wrapper would not do; a `query` the
object had of its own is put back):
 *
 * * a simple query (no parameters) gets the opening prefixed to its text; the opening's results are removed from the
 *   answer, which is what the caller's own text gives;
 * * a query with parameters (one statement per round trip) is preceded by the opening as a query of its own.
 *
 * The gate raises when it is closed, so nothing after it runs. Any error of that first round trip — the gate, the
 * opening, or the caller's statement — throws CommitMiss: the transaction is aborted, and push starts over on the
 * usual path, which answers every such case as it always has. Later queries then throw the same until `restore`.
 */
export class DeferredOpening {
  readonly #db: pg.PoolClient
  readonly #text: string
  readonly #results: number
  /** What `query` was on the object itself before (an instrumentation's wrapper), if anything. */
  readonly #own: PropertyDescriptor | undefined
  #state: 'pending' | 'sent' | CommitMiss = 'pending'
  /** The round trip `send` started, until it settles (rejects with CommitMiss when the opening failed). */
  #alone: Promise<void> | undefined

  /** `text`: the opening's statements, `results`: how many results they give. */
  constructor(db: pg.PoolClient, text: string, results: number) {
    this.#db = db
    this.#text = text
    this.#results = results
    this.#own = Object.getOwnPropertyDescriptor(db, 'query')
    const send = (config: unknown, values?: unknown) => this.#first(config, values)
    Object.defineProperty(db, 'query', { value: send, configurable: true, writable: true })
  }

  /** Whether the opening reached the server (a transaction is open, or aborted). */
  get sent(): boolean {
    return this.#state !== 'pending'
  }

  /**
   * Sends the opening in a round trip of its own when it is still pending (throws CommitMiss as `query` would); when
   * `send` already started one, waits for it. From the call on, the connection's own `query` is back: statements
   * queue behind the opening (node-pg sends one query at a time).
   */
  send(): Promise<void> {
    if (this.#state === 'pending') this.#alone = this.#first('SELECT 1').then(() => {})
    return this.#alone ?? Promise.resolve()
  }

  /** Gives the connection its own `query` back; call before ROLLBACK / release on every path. */
  restore(): void {
    if (this.#own) Object.defineProperty(this.#db, 'query', this.#own)
    else delete (this.#db as { query?: Query }).query
  }

  async #first(config: unknown, values?: unknown): Promise<unknown> {
    if (this.#state instanceof CommitMiss) throw this.#state
    this.restore()
    this.#state = 'sent'
    const db = this.#db
    const text = typeof config === 'string' ? config : (config as { text: string }).text
    const simple = values === undefined && (typeof config === 'string' || !('values' in (config as object)))
    try {
      if (!simple) {
        await db.query(this.#text)
        return await (db.query as (c: unknown, v?: unknown) => Promise<unknown>)(config, values)
      }
      const merged =
        typeof config === 'string'
          ? `${this.#text};\n${text}`
          : { ...(config as object), text: `${this.#text};\n${text}` }
      const results = (await db.query(merged as string)) as unknown as pg.QueryResult[]
      const own = results.slice(this.#results)
      return own.length === 1 ? own[0] : own
    } catch (err) {
      this.#state = new CommitMiss(err)
      Object.defineProperty(db, 'query', {
        value: () => Promise.reject(this.#state),
        configurable: true,
        writable: true,
      })
      throw this.#state
    }
  }
}
