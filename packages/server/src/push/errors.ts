import type { PushReasonCode, PushStatus } from '@synchro/protocol'
import { isTransientError } from '../errors.js'

/** The per-record outcome of a failed statement (Decision 3). */
export interface RecordFailure {
  status: PushStatus
  reasonCode: PushReasonCode
  message: string
}

export type WriteKind = 'create' | 'update' | 'delete' | 'resurrect'

const RETRYABLE: { [k in WriteKind]: RecordFailure } = {
  create: { status: 'rejected_retryable', reasonCode: 'create_failed', message: 'failed to create record' },
  update: { status: 'rejected_retryable', reasonCode: 'update_failed', message: 'failed to update record' },
  delete: { status: 'rejected_retryable', reasonCode: 'delete_failed', message: 'failed to delete record' },
  resurrect: {
    status: 'rejected_retryable',
    reasonCode: 'resurrection_failed',
    message: 'failed to resurrect record',
  },
}

/** A retryable failure of one write kind (SQL failed for a reason the client cannot fix). */
export function retryableFailure(kind: WriteKind): RecordFailure {
  return RETRYABLE[kind]
}

export const INVALID_DATA: RecordFailure = {
  status: 'rejected_terminal',
  reasonCode: 'invalid_data',
  message: 'invalid data format',
}
export const FORBIDDEN: RecordFailure = {
  status: 'rejected_terminal',
  reasonCode: 'forbidden',
  message: 'not allowed to write this record',
}

/**
 * Maps a statement error of one record to its result. Messages are fixed texts: PostgreSQL's own message may
 * quote the offending value or another user's key, so it never reaches the client (Decision 6) or the log.
 */
export function classifyWriteError(err: unknown, kind: WriteKind): RecordFailure {
  if (isTransientError(err)) return RETRYABLE[kind]
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : ''
  // Class 22 (data exception: bad text for the type, out of range, too long, bad JSON, NUL in text) and 54
  // (program limit, e.g. an index row too large for a huge value): the client's data can never succeed.
  if (code.startsWith('22') || code.startsWith('54')) return INVALID_DATA
  if (code === '23505' || code === '23502' || code === '23503' || code === '23514' || code === '23P01') {
    return { status: 'rejected_terminal', reasonCode: 'constraint_violation', message: 'constraint violation' }
  }
  // insufficient_privilege: an RLS WITH CHECK failure or a missing grant.
  if (code === '42501') return FORBIDDEN
  return RETRYABLE[kind]
}

/** The SQLSTATE of an error, for logs (never its message: it can quote row data). */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code
  return typeof code === 'string' ? code : undefined
}
