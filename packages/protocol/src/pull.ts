import * as v from 'valibot'
import type { Loose } from './common.js'
import { type DeleteEntry, int32, int64, optional, required, type SyncRecord, schemaPair } from './common.js'

export const pullRequiredKeys = ['client_id', 'schema_version', 'schema_hash'] as const

export const pullRequest = v.object({
  client_id: required(v.string(), ''),
  checkpoint: optional(int64),
  tables: optional(v.array(v.string())),
  limit: optional(int32),
  known_buckets: optional(v.array(v.string())),
  ...schemaPair,
})
export type PullRequest = Loose<v.InferOutput<typeof pullRequest>>

export type SnapshotReason = 'initial_sync_required' | 'checkpoint_before_retention' | 'history_unavailable'

export interface BucketUpdates {
  added?: string[]
  removed?: string[]
}

export interface PullResponse {
  changes: SyncRecord[]
  deletes: DeleteEntry[]
  checkpoint: number
  has_more: boolean
  snapshot_required?: boolean
  snapshot_reason?: SnapshotReason
  bucket_updates?: BucketUpdates
  schema_version: number
  schema_hash: string
}
