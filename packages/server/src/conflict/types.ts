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
  /**
   * Declares that `resolve` decides from the stamps and the client's input alone: it never reads `serverData`, has
   * no side effects and may be called more than once for one record. Push then reads only the stored stamps up
   * front and loads (and locks) the full row just for records that end in a conflict; `serverData` is `{}` unless
   * that row was loaded anyway. Unset: every row that may reach resolution is loaded with its data and locked first.
   * Ignored while an `onConflict` hook is configured (the hook sees the full input).
   */
  readonly stampsOnly?: boolean
  resolve(input: ConflictInput): ConflictDecision | Promise<ConflictDecision>
}
