import { ConfigurationError } from '../errors.js'
import { toEpochNanos } from '../util/instant.js'
import type { ConflictDecision, ConflictInput, ConflictResolver } from './types.js'

/** A resolver that decides synchronously (both built-ins do). */
export type SyncConflictResolver = Omit<ConflictResolver, 'resolve'> & {
  resolve(input: ConflictInput): ConflictDecision
}

/**
 * Last-write-wins (PROTOCOL.md §3 G). With a base equal to the server stamp (µs-exact) the client wins; a base
 * ahead of the server loses; otherwise (no base, or an older base) the client wins only when
 * `client_updated_at + tolerance` is strictly later than the stored `updated_at` — a tie goes to the server.
 * Instants are compared as epoch nanoseconds, never through `Date` (Decision 2), so offsets and any number of
 * fractional digits compare exactly.
 */
export function lastWriteWins(opts: { clockSkewToleranceMs?: number } = {}): SyncConflictResolver {
  const ms = opts.clockSkewToleranceMs ?? 0
  // A negative or non-finite tolerance has no meaning and would silently flip outcomes: refuse it at start.
  if (!Number.isFinite(ms) || ms < 0) {
    throw new ConfigurationError(`clockSkewToleranceMs must be a finite number >= 0, got ${String(ms)}`)
  }
  const toleranceNs = BigInt(Math.round(ms * 1_000_000))
  // Push asks twice per record (run.ts: whether the row is needed, then the decision), and a request's records often
  // share one client stamp: parsed instants are remembered (≈ 0.15 ms per 100-record push), within a bound.
  const parsed = new Map<string, bigint>()
  const nanos = (ts: string): bigint => {
    let n = parsed.get(ts)
    if (n === undefined) {
      if (parsed.size >= 4096) parsed.clear()
      n = toEpochNanos(ts)
      parsed.set(ts, n)
    }
    return n
  }
  return {
    name: 'lww',
    stampsOnly: true,
    resolve(input: ConflictInput): ConflictDecision {
      const server = nanos(input.serverUpdatedAt)
      if (input.baseUpdatedAt !== undefined) {
        const base = nanos(input.baseUpdatedAt)
        if (base === server) return { winner: 'client', reason: 'client base matches server version' }
        if (base > server) return { winner: 'server', reason: 'client base version is ahead of server version' }
      }
      const client = nanos(input.clientUpdatedAt) + toleranceNs
      if (client > server) return { winner: 'client', reason: 'client version is newer' }
      return { winner: 'server', reason: 'server version is newer' }
    },
  }
}

/** The server always wins conflicts (brand-new creates and deletes still apply). */
export function serverWins(): SyncConflictResolver {
  return {
    name: 'server_wins',
    stampsOnly: true,
    resolve: () => ({ winner: 'server', reason: 'server always wins' }),
  }
}
