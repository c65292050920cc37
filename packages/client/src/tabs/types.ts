/**
 * Several SDK instances sharing one database (browser tabs): exactly one owns the database and the sync loop, the
 * others send it their statements. The platform (a driver such as sqlite-wasm) provides election, messaging and
 * liveness through `TabCoordination`; the logic on top of it (src/tabs/) is platform-free.
 */
import type { SqlParam, SqlValue } from '../driver.js'

export interface TabCoordination {
  /** This instance's id, unique among the instances sharing the database. */
  readonly selfId: string
  /** True once this instance owns the database (the driver then runs statements locally). */
  isOwner(): boolean
  /** Calls `cb` once, when this instance becomes the owner (immediately if it already is). */
  onOwner(cb: () => void): void
  /** Sends to every other instance. */
  post(msg: TabMessage): void
  onMessage(cb: (msg: TabMessage) => void): () => void
  /** Calls `cb` once instance `id` is gone (closed or crashed). */
  onGone(id: string, cb: () => void): void
  /** Calls `cb` when the platform reports that the network is back. */
  onOnline?(cb: () => void): () => void
}

export type StatementOp =
  | { op: 'all' | 'run'; sql: string; params?: readonly SqlParam[] }
  | { op: 'runMany'; sql: string; paramLists: readonly (readonly SqlParam[])[] }
  | { op: 'exec'; sql: string }

export type RequestBody =
  | { kind: 'open'; sid: string }
  | ({ kind: 'stmt'; sid: string } & StatementOp)
  | { kind: 'end'; sid: string; commit: boolean }
  | { kind: 'committed'; sid: string }
  | { kind: 'observe'; tables: string[] }
  | { kind: 'syncNow' }
  | { kind: 'start' }

export interface WireError {
  name: string
  message: string
  code?: string
}

/** A status event as it crosses tabs (errors as plain data). */
export interface WireStatus {
  status: string
  retryAt: number | null
  error?: WireError
  progress?: { phase: 'snapshot' | 'pull'; rows: number; pages: number }
}

export type TabMessage =
  | { t: 'hello'; from: string }
  | { t: 'owner'; from: string }
  | { t: 'req'; from: string; to: string; rid: number; body: RequestBody }
  | { t: 'res'; from: string; to: string; rid: number; ok: true; value?: SqlValue | object | null }
  | { t: 'res'; from: string; to: string; rid: number; ok: false; error: WireError }
  | { t: 'changed'; from: string; tables: string[]; origin: 'local' | 'sync' }
  | { t: 'status'; from: string; status: WireStatus }
  | { t: 'conflict'; from: string; event: string }
