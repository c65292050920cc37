// 8. Log hygiene: no row value reaches a log line above debug. (a) The daemon binary on its embedded PostgreSQL, at
// LOG_LEVEL=debug, gets pushes whose values PostgreSQL rejects and quotes in its error messages (`invalid input
// syntax for type bigint: "…"`): the embedded server's stderr and the engine's own logs must keep every marker out
// of info/warn/error/fatal lines (debug may carry them, and must, or the probe proved nothing). How errors of the
// engine and the WAL consumer are made log-safe is covered by packages/server/src/util/log.pg.test.ts.
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startDaemon } from '@synchro/test-harness/synchrod'
import { stopGracefully } from '../lib/daemon.js'
import { type PushChange, RawClient } from '../lib/raw-client.js'
import { poll } from '../lib/util.js'

export interface LogHygieneReport {
  probes: number
  /** Probe values PostgreSQL quoted in its own log (seen at debug): the probe reached the server. */
  quotedAtDebug: number
  linesAboveDebug: number
  leaks: number
  violations: string[]
}

const LEVELS_ABOVE_DEBUG = new Set(['info', 'warn', 'error', 'fatal'])

/** Values PostgreSQL cannot store in the column they are sent for, each a unique marker. */
function probes(orderId: string): Array<{ marker: string; change: PushChange }> {
  const now = new Date().toISOString()
  const order = (data: Record<string, unknown>) => ({
    id: randomUUID(),
    table_name: 'orders',
    operation: 'create' as const,
    data: { ship_address: '1 Main St', ...data },
    client_updated_at: now,
  })
  const detail = (data: Record<string, unknown>) => ({
    id: randomUUID(),
    table_name: 'order_details',
    operation: 'create' as const,
    data: { order_id: orderId, product_name: 'p', ...data },
    client_updated_at: now,
  })
  return [
    { marker: 'SSN-111-11-1111', change: order({ total_cents: 'SSN-111-11-1111' }) },
    { marker: 'SSN-222-22-2222', change: order({ required_date: 'SSN-222-22-2222' }) },
    { marker: 'SSN-333-33-3333', change: order({ status: 'SSN-333-33-3333' }) },
    { marker: 'SSN-444-44-4444', change: order({ preferred_ship_time: 'SSN-444-44-4444' }) },
    { marker: '98765432109876', change: detail({ quantity: '98765432109876' }) }, // out of range for integer
    { marker: 'SSN-555-55-5555', change: detail({ quantity: 'SSN-555-55-5555' }) },
    { marker: 'SSN-666-66-6666', change: detail({ unit_price: 'SSN-666-66-6666' }) },
    { marker: 'SSN-777-77-7777', change: detail({ order_id: 'SSN-777-77-7777' }) },
    {
      marker: 'SSN-888-88-8888',
      change: {
        id: randomUUID(),
        table_name: 'categories',
        operation: 'create',
        data: { name: 'c', search_tags: 'SSN-888-88-8888' },
        client_updated_at: now,
      },
    },
  ]
}

interface LogLine {
  level?: string
  [k: string]: unknown
}

function parseLines(output: string): Array<{ raw: string; level: string }> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((raw) => {
      try {
        return { raw, level: String((JSON.parse(raw) as LogLine).level) }
      } catch {
        return { raw, level: 'unparsed' }
      }
    })
}

export async function runLogHygiene(): Promise<LogHygieneReport> {
  const violations: string[] = []
  const dir = mkdtempSync(path.join(tmpdir(), 'synchro-rel-logs-'))
  const daemon = await startDaemon(['--demo'], {
    cwd: dir,
    timeoutMs: 120_000,
    env: { SYNCHRO_DATA_DIR: path.join(dir, 'pgdata'), LISTEN_ADDR: '127.0.0.1:0', LOG_LEVEL: 'debug' },
  })
  let list: ReturnType<typeof probes> = []
  try {
    const client = new RawClient(() => daemon.url, randomUUID())
    if (!(await client.bootstrap())) violations.push('bootstrap failed')
    const orderId = randomUUID()
    const ok = await client.push([
      {
        id: orderId,
        table_name: 'orders',
        operation: 'create',
        data: { ship_address: '1 Main St' },
        client_updated_at: new Date().toISOString(),
      },
    ])
    if (ok.status !== 200 || ok.body.accepted?.length !== 1) violations.push(`control push: ${ok.text.slice(0, 200)}`)
    list = probes(orderId)
    for (const p of list) {
      const a = await client.push([p.change])
      if (a.status >= 500) violations.push(`${p.marker}: HTTP ${a.status}`)
    }
    // PostgreSQL writes its log asynchronously: wait until the last probe's error line arrived.
    await poll(() => daemon.output().includes((list.at(-1) as { marker: string }).marker), 10_000, 'server log line')
  } finally {
    await stopGracefully(daemon)
    rmSync(dir, { recursive: true, force: true })
  }
  const lines = parseLines(daemon.output())
  const above = lines.filter((l) => LEVELS_ABOVE_DEBUG.has(l.level))
  let quoted = 0
  let leaks = 0
  for (const { marker } of list) {
    if (lines.some((l) => l.level === 'debug' && l.raw.includes(marker))) quoted++
    const leaked = above.filter((l) => l.raw.includes(marker))
    leaks += leaked.length
    for (const l of leaked.slice(0, 2)) violations.push(`${marker} logged above debug: ${l.raw.slice(0, 300)}`)
  }
  if (quoted < list.length / 2) violations.push(`only ${quoted}/${list.length} probes reached PostgreSQL's log`)
  return { probes: list.length, quotedAtDebug: quoted, linesAboveDebug: above.length, leaks, violations }
}
