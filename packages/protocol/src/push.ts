import * as v from 'valibot'
import type { Loose } from './common.js'
import { jsonObject, optional, required, type SyncRecord, schemaPair, timestamp } from './common.js'

export const pushRequiredKeys = ['schema_version', 'schema_hash'] as const

/** Go's zero time, used when `client_updated_at` is absent. */
export const ZERO_TIME = '0001-01-01T00:00:00Z'

export const pushRecord = jsonObject({
  id: required(v.string(), ''),
  table_name: required(v.string(), ''),
  operation: required(v.string(), ''),
  // `data` is validated per operation by the engine (Decision 4): any JSON value passes here.
  data: v.optional(v.unknown()),
  client_updated_at: optional(timestamp),
  base_updated_at: optional(timestamp),
})
export type PushRecord = Loose<v.InferOutput<typeof pushRecord>>

export const pushRequest = v.object({
  client_id: required(v.string(), ''),
  changes: optional(v.array(pushRecord)),
  ...schemaPair,
})
export type PushRequest = Loose<v.InferOutput<typeof pushRequest>>

export type PushStatus = 'applied' | 'conflict' | 'rejected_terminal' | 'rejected_retryable'

export type PushReasonCode =
  | 'table_not_registered'
  | 'table_read_only'
  | 'invalid_operation'
  | 'record_exists'
  | 'invalid_data'
  | 'record_not_found'
  | 'record_deleted'
  | 'server_won_conflict'
  | 'already_deleted'
  | 'create_failed'
  | 'update_failed'
  | 'delete_failed'
  | 'resurrection_failed'
  | 'internal_error'
  | 'constraint_violation'
  | 'forbidden'

export interface PushResult {
  id: string
  table_name: string
  operation: string
  status: PushStatus
  reason_code?: PushReasonCode
  message?: string
  server_version?: SyncRecord
  server_updated_at?: string
  server_deleted_at?: string
}

export interface PushResponse {
  accepted: PushResult[]
  rejected: PushResult[]
  checkpoint: number
  server_time: string
  schema_version: number
  schema_hash: string
}
