import * as v from 'valibot'
import type { Loose } from './common.js'
import { int32, int64, jsonObject, optional, required, type SyncRecord, schemaPair } from './common.js'

export const snapshotRequiredKeys = ['client_id', 'schema_version', 'schema_hash'] as const

export const snapshotCursor = jsonObject({
  checkpoint: required(int64, 0),
  table_idx: required(int32, 0),
  after_id: required(v.string(), ''),
})
export type SnapshotCursor = Loose<v.InferOutput<typeof snapshotCursor>>

export const snapshotRequest = v.object({
  client_id: required(v.string(), ''),
  cursor: optional(snapshotCursor),
  limit: optional(int32),
  ...schemaPair,
})
export type SnapshotRequest = Loose<v.InferOutput<typeof snapshotRequest>>

export interface SnapshotResponse {
  records: SyncRecord[]
  cursor?: SnapshotCursor
  checkpoint: number
  has_more: boolean
  schema_version: number
  schema_hash: string
}
