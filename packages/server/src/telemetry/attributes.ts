/**
 * Span attributes of Synchro's own work, named `synchro.*`. Counts and positions only: never row data, SQL
 * parameters or user ids (spans leave the process).
 */
import type { Attributes } from '@opentelemetry/api'
import type { PullRequest, PullResponse, PushRequest, PushResponse, SnapshotResponse } from '@synchro/protocol'
import type { CompactionResult } from '../changelog/compaction.js'
import { snapshotRecordCount } from '../snapshot/records.js'
import { bigintToLsn } from '../wal/lsn.js'

export function pullAttributes(req: PullRequest): Attributes {
  return { 'synchro.client_id': req.client_id, 'synchro.checkpoint': req.checkpoint ?? 0 }
}

export function pullResult(res: PullResponse): Attributes {
  const out: Attributes = {
    'synchro.changes': res.changes.length,
    'synchro.deletes': res.deletes.length,
    'synchro.next_checkpoint': res.checkpoint,
    'synchro.has_more': res.has_more,
  }
  if (res.snapshot_reason) out['synchro.snapshot_reason'] = res.snapshot_reason
  return out
}

export function pushAttributes(req: PushRequest): Attributes {
  return { 'synchro.client_id': req.client_id, 'synchro.records': req.changes?.length ?? 0 }
}

export function pushResult(res: PushResponse): Attributes {
  return { 'synchro.accepted': res.accepted.length, 'synchro.rejected': res.rejected.length }
}

export function snapshotResult(res: SnapshotResponse): Attributes {
  return { 'synchro.records': snapshotRecordCount(res), 'synchro.has_more': res.has_more }
}

export function compactionResult(res: CompactionResult): Attributes {
  return {
    'synchro.deactivated_clients': res.deactivatedClients,
    'synchro.safe_seq': res.safeSeq,
    'synchro.deleted_entries': res.deletedEntries,
  }
}

/** One write statement of a push: the table, the kind of write and how many records it carries. */
export function pushBatchAttributes(table: string, operation: string, records: number): Attributes {
  return { 'synchro.table': table, 'synchro.operation': operation, 'synchro.records': records }
}

/** One capture batch: source transactions in, changelog rows out, the durable LSN it reached. */
export function captureAttributes(txns: readonly unknown[]): Attributes {
  return { 'synchro.transactions': txns.length }
}

export function captureResult(res: { lsn: bigint; changelogRows: number; ruleFailures: number }): Attributes {
  return {
    'synchro.changelog_rows': res.changelogRows,
    'synchro.rule_failures': res.ruleFailures,
    'synchro.lsn': bigintToLsn(res.lsn),
  }
}
