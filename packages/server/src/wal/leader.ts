import { createHash } from 'node:crypto'
import pg from 'pg'
import type { Logger } from '../util/log.js'
import { WalConnectionError } from './errors.js'

/** Advisory-lock key for a slot: stable across processes and versions (sha-256, first 8 bytes, signed). */
export function leaderLockKey(slotName: string): string {
  return createHash('sha256').update(`synchro:wal:${slotName}`).digest().readBigInt64BE(0).toString()
}

/**
 * The leader election of one slot: a session advisory lock held on a dedicated normal connection. Losing that
 * connection while leader loses the leadership (`onLost`).
 */
export class LeaderLock {
  #lock: pg.Client | undefined
  #leader = false
  readonly #key: string

  constructor(
    readonly replicationUrl: string,
    readonly slotName: string,
    readonly log: Logger,
    /** The connection of a held lock ended or failed. */
    readonly onLost: (err?: Error) => void,
  ) {
    this.#key = leaderLockKey(slotName)
  }

  get leader(): boolean {
    return this.#leader
  }

  /** Takes (or confirms) the leader lock on a dedicated normal connection. */
  async acquire(): Promise<boolean> {
    if (this.#leader && this.#lock) return true
    if (!this.#lock) {
      const client = new pg.Client({
        connectionString: this.replicationUrl,
        keepAlive: true,
        application_name: 'synchro-wal-leader',
      })
      client.on('error', (err) => this.#lost(client, err))
      client.on('end', () => this.#lost(client))
      try {
        await client.connect()
      } catch (err) {
        throw new WalConnectionError(`leader-lock connection failed: ${(err as Error).message}`, { cause: err })
      }
      this.#lock = client
    }
    const { rows } = await this.#lock.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [
      this.#key,
    ])
    this.#leader = rows[0]?.ok === true
    if (this.#leader) this.log.info({ slot: this.slotName }, 'wal consumer: became leader')
    return this.#leader
  }

  /** Probes the lock session so a silently dead leader connection is noticed. */
  probe(): void {
    this.#lock?.query('SELECT 1').catch(() => {})
  }

  #lost(client: pg.Client, err?: Error): void {
    if (client !== this.#lock) return
    this.#lock = undefined
    const was = this.#leader
    this.#leader = false
    if (was) this.onLost(err)
  }

  /** Gives the leadership up without waiting (the connection is closed in the background). */
  drop(): void {
    const l = this.#lock
    this.#lock = undefined
    this.#leader = false
    l?.end().catch(() => {})
  }

  /** Unlocks and closes the connection. */
  async release(): Promise<void> {
    const l = this.#lock
    this.#lock = undefined
    if (l) {
      if (this.#leader) await l.query('SELECT pg_advisory_unlock($1::bigint)', [this.#key]).catch(() => {})
      await l.end().catch(() => {})
    }
    this.#leader = false
  }
}
