import { describe, expect, it } from 'vitest'
import { CaptureLag, OPERATOR_EVENTS } from './events.js'

/** A logger that keeps every line's fields. */
function memoryLogger() {
  const lines: { level: string; fields: Record<string, unknown> }[] = []
  const at = (level: string) => (fields: object) => lines.push({ level, fields: fields as Record<string, unknown> })
  return { lines, info: at('info'), warn: at('warn') }
}

const PG_EPOCH_MS = Date.UTC(2000, 0, 1)
/** A transaction that committed at `ms` (Unix milliseconds), as pgoutput reports it. */
const committedAt = (ms: number) => ({ commitTime: BigInt(ms - PG_EPOCH_MS) * 1000n })

describe('CaptureLag (synchro.capture.behind / caught_up)', () => {
  it('warns with stable fields when a batch lags over the threshold, repeats at most every repeatMs, then reports catching up', () => {
    const log = memoryLogger()
    const lag = new CaptureLag(log, 1_000, 10_000)
    const t0 = 1_800_000_000_000
    lag.observe([committedAt(t0 - 100)], '0/10', 0, t0) // 100 ms behind: fine
    lag.observe([committedAt(t0 - 60_000), committedAt(t0 - 5_000)], '0/20', 4096, t0)
    lag.observe([committedAt(t0 - 4_000)], '0/30', 2048, t0 + 1_000) // still behind, within repeatMs: quiet
    lag.observe([committedAt(t0 + 5_000)], '0/40', 1024, t0 + 12_000) // 7 s behind, repeat due
    lag.observe([committedAt(t0 + 12_900)], '0/50', 0, t0 + 13_000)
    lag.observe([committedAt(t0 + 13_950)], '0/60', 0, t0 + 14_000) // no second caught_up
    expect(log.lines).toEqual([
      {
        level: 'warn',
        fields: {
          event: OPERATOR_EVENTS.captureBehind,
          lagMs: 5_000,
          thresholdMs: 1_000,
          behindForMs: 0,
          lagBytes: 4096,
          lsn: '0/20',
        },
      },
      {
        level: 'warn',
        fields: {
          event: 'synchro.capture.behind',
          lagMs: 7_000,
          thresholdMs: 1_000,
          behindForMs: 12_000,
          lagBytes: 1024,
          lsn: '0/40',
        },
      },
      {
        level: 'info',
        fields: {
          event: 'synchro.capture.caught_up',
          lagMs: 100,
          thresholdMs: 1_000,
          behindForMs: 13_000,
          lsn: '0/50',
        },
      },
    ])
  })

  it('is off with threshold 0 and ignores batches without a commit time', () => {
    const log = memoryLogger()
    new CaptureLag(log, 0).observe([committedAt(0)], '0/1', null, Date.now())
    new CaptureLag(log, 10).observe([{}], '0/1', null, Date.now())
    expect(log.lines).toEqual([])
  })
})
