/** What a conflict resolver sees: the incoming write and the stored row (timestamps as RFC 3339 text, µs exact). */
export interface ConflictInput {
  table: string
  recordId: string
  operation: 'create' | 'update'
  userId: string
  /** Client's `client_updated_at` (Go zero time when absent). */
  clientUpdatedAt: string
  /** Client's `base_updated_at`, when sent. */
  baseUpdatedAt: string | undefined
  /** The stored row's updated-at column. */
  serverUpdatedAt: string
  clientData: { [column: string]: unknown }
  serverData: { [column: string]: unknown }
}

/** The winner and a human-readable reason (sent to the client as `message` when the server wins). */
export interface ConflictDecision {
  winner: 'client' | 'server'
  reason: string
}

/** Pluggable conflict resolution (LWW by default). */
export interface ConflictResolver {
  readonly name: string
  resolve(input: ConflictInput): ConflictDecision | Promise<ConflictDecision>
}
