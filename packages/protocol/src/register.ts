import * as v from 'valibot'
import type { Loose } from './common.js'
import { optional, required, schemaPair } from './common.js'

export const registerRequiredKeys = ['schema_version', 'schema_hash'] as const

export const registerRequest = v.object({
  client_id: required(v.string(), ''),
  client_name: optional(v.string()),
  platform: required(v.string(), ''),
  app_version: required(v.string(), ''),
  ...schemaPair,
})
export type RegisterRequest = Loose<v.InferOutput<typeof registerRequest>>

export interface RegisterResponse {
  id: string
  server_time: string
  last_sync_at?: string
  checkpoint: number
  schema_version: number
  schema_hash: string
}
