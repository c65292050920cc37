import type { Engine } from '@synchro/server'
import { snapshotRecordCount } from '@synchro/server/internal'
import type { Counter } from 'prom-client'

/** The counters and gauge state an instrumented engine feeds (a Metrics instance). */
export interface EngineCounters {
  readonly pushRecords: Counter<'status' | 'reason'>
  readonly pullRecords: Counter<'kind'>
  readonly snapshotRecords: Counter
  liveStreams: number
}

/**
 * Counts records per push outcome and per pull/snapshot page by wrapping the engine's methods: the HTTP handler
 * calls them on the instance, so the counts come from the typed results, not from re-parsing response bodies.
 */
export function instrumentEngine(engine: Engine, m: EngineCounters): void {
  const push = engine.push.bind(engine)
  const pull = engine.pull.bind(engine)
  const snapshot = engine.snapshot.bind(engine)
  // The request options (the handler's deadline) must reach the engine.
  engine.push = async (userId, req, opts) => {
    const res = await push(userId, req, opts)
    for (const r of [...res.accepted, ...res.rejected]) {
      m.pushRecords.inc({ status: r.status, reason: r.reason_code ?? '' })
    }
    return res
  }
  engine.pull = async (userId, req, opts) => {
    const res = await pull(userId, req, opts)
    if (res.changes.length > 0) m.pullRecords.inc({ kind: 'change' }, res.changes.length)
    if (res.deletes.length > 0) m.pullRecords.inc({ kind: 'delete' }, res.deletes.length)
    return res
  }
  const subscribe = engine.subscribeChanges.bind(engine)
  engine.subscribeChanges = async (...args) => {
    const unsubscribe = await subscribe(...args)
    m.liveStreams++
    let open = true
    return () => {
      if (open) m.liveStreams--
      open = false
      unsubscribe()
    }
  }
  engine.snapshot = async (userId, req, opts) => {
    const res = await snapshot(userId, req, opts)
    m.snapshotRecords.inc(snapshotRecordCount(res))
    return res
  }
}
