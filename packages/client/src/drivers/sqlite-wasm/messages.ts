/** Messages between a tab and its database worker (structured clone: Uint8Array, bigint and null survive). */
import type { Row, SqlParam } from '../../driver.js'

export type WorkerRequest =
  | { id: number; op: 'init'; wasmURL?: string }
  | { id: number; op: 'open'; name: string }
  | { id: number; op: 'all' | 'run'; sql: string; params?: readonly SqlParam[] }
  | { id: number; op: 'runMany'; sql: string; paramLists: readonly (readonly SqlParam[])[] }
  | { id: number; op: 'exec'; sql: string }
  | { id: number; op: 'rollback' | 'close' }

export type WorkerResponse =
  | { id: number; ok: true; rows?: Row[]; changes?: number; version?: string }
  | { id: number; ok: false; error: { name: string; message: string } }
