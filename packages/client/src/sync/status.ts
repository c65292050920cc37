/** The engine's status and conflict events, and the listeners they go to. */
import type { SynchroError } from '../errors.js'
import type { ConflictInfo } from './push.js'

export type SyncStatus = 'idle' | 'connecting' | 'syncing' | 'error' | 'stopped'

export interface SyncProgress {
  /** `snapshot` while bootstrapping/rebuilding, `pull` while catching up. */
  phase: 'snapshot' | 'pull'
  /** Rows received so far in this phase. */
  rows: number
  /** Pages received so far in this phase. */
  pages: number
  /** Snapshot only: synced tables fully received, of `tablesTotal` (a progress bar's coarse measure). */
  tablesDone?: number
  tablesTotal?: number
}

export interface StatusEvent {
  status: SyncStatus
  /** When the next automatic attempt happens after an error; null otherwise. */
  retryAt: Date | null
  /** The failure behind an `error` status. */
  error?: SynchroError
  /** Snapshot/pull progress while `syncing`. */
  progress?: SyncProgress
}

export type ConflictEvent = ConflictInfo

export type SnapshotApprover = () => Promise<boolean> | boolean

/** The current status and the listeners of status and conflict events; a throwing listener never breaks sync. */
export class StatusFeed {
  current: StatusEvent = { status: 'stopped', retryAt: null }
  readonly statusListeners = new Set<(e: StatusEvent) => void>()
  readonly conflictListeners = new Set<(e: ConflictEvent) => void>()

  /** Tells the listeners, unless `e` says nothing new. */
  emit(e: StatusEvent): void {
    const prev = this.current
    if (
      prev.status === e.status &&
      prev.retryAt?.getTime() === e.retryAt?.getTime() &&
      prev.error === e.error &&
      prev.progress?.rows === e.progress?.rows &&
      prev.progress?.pages === e.progress?.pages &&
      prev.progress?.phase === e.progress?.phase &&
      prev.progress?.tablesDone === e.progress?.tablesDone
    ) {
      return
    }
    this.current = e
    for (const l of [...this.statusListeners]) {
      try {
        l(e)
      } catch {
        // Listener failures must not break sync.
      }
    }
  }

  emitConflict(c: ConflictEvent): void {
    for (const l of [...this.conflictListeners]) {
      try {
        l(c)
      } catch {
        // idem
      }
    }
  }
}
