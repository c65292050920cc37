/**
 * OpenTelemetry end to end: an in-memory exporter registered as the global SDK, a SynchroClient given a tracer,
 * the real server over node:http with its WAL consumer. One push and one pull each form one trace that starts at
 * the client and continues on the server through the `traceparent` header.
 */
import { randomUUID } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { context, propagation, SpanKind, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'
import { startWalConsumer, type WalConsumer } from '@synchro/server'
import { toNodeListener } from '@synchro/server/node'
import { createTestApp, type TestApp } from '@synchro/test-harness'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanupTempDirs, makeClient, startSynced, waitFor } from '../test/helpers.js'
import type { SynchroClient } from './client.js'

const exporter = new InMemorySpanExporter()
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] })
let app: TestApp
let server: http.Server
let consumer: WalConsumer
let client: SynchroClient
let url = ''
const user = randomUUID()

beforeAll(async () => {
  // What a host's OpenTelemetry SDK setup does: context manager, W3C propagator, tracer provider.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  trace.setGlobalTracerProvider(provider)
  app = await createTestApp()
  server = http.createServer(toNodeListener(app.handler))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  consumer = startWalConsumer({
    pool: app.db.pool,
    registry: app.engine.ctx.registry,
    replicationUrl: app.db.url,
    slotName: app.db.name,
  })
  await waitFor(() => consumer.status().running, 30_000, 'WAL consumer running')
  client = makeClient(url, { userID: user, tracer: trace.getTracer('my-app') })
  await startSynced(client)
}, 120_000)

afterAll(async () => {
  await client?.close()
  await consumer?.stop()
  await new Promise((r) => server.close(r))
  await app?.close()
  cleanupTempDirs()
  trace.disable()
  propagation.disable()
  context.disable()
  await provider.shutdown()
})

const KIND: Record<number, string> = { [SpanKind.CLIENT]: 'client', [SpanKind.SERVER]: 'server' }

/** The spans of one trace as a tree of names (kind in brackets), children in start order. */
function tree(spans: readonly ReadableSpan[], root: ReadableSpan): unknown {
  const label = `${root.name}${KIND[root.kind] ? ` [${KIND[root.kind]}]` : ''}`
  const children = spans
    .filter((s) => s.parentSpanContext?.spanId === root.spanContext().spanId)
    .sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1])
  return children.length === 0 ? label : { [label]: children.map((c) => tree(spans, c)) }
}

function only(spans: readonly ReadableSpan[], name: string, kind: SpanKind): ReadableSpan {
  const found = spans.filter((s) => s.name === name && s.kind === kind)
  expect(found, `${name} spans`).toHaveLength(1)
  return found[0] as ReadableSpan
}

describe('OpenTelemetry traces (in-memory exporter)', () => {
  it('one push and one pull: client span → server span (from traceparent) → engine span → push batch', async () => {
    exporter.reset()
    const id = randomUUID()
    await client.execute('INSERT INTO orders (id, user_id, ship_address) VALUES (?, ?, ?)', [id, user, '1 Main St'])
    await client.syncNow()
    const spans = exporter.getFinishedSpans()

    const push = only(spans, 'POST /sync/push', SpanKind.CLIENT)
    expect(push.instrumentationScope.name).toBe('my-app')
    const pushTrace = spans.filter((s) => s.spanContext().traceId === push.spanContext().traceId)
    expect(tree(pushTrace, push)).toEqual({
      'POST /sync/push [client]': [{ 'POST /sync/push [server]': [{ 'synchro.push': ['synchro.push.batch'] }] }],
    })
    const serverPush = only(spans, 'POST /sync/push', SpanKind.SERVER)
    expect(serverPush.instrumentationScope.name).toBe('@synchro/server')
    expect(serverPush.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/sync/push',
      'http.response.status_code': 200,
    })
    expect(only(spans, 'synchro.push', SpanKind.INTERNAL).attributes).toMatchObject({
      'synchro.records': 1,
      'synchro.accepted': 1,
      'synchro.rejected': 0,
    })
    expect(only(spans, 'synchro.push.batch', SpanKind.INTERNAL).attributes).toEqual({
      'synchro.table': 'orders',
      'synchro.operation': 'create',
      'synchro.records': 1,
    })
    expect(push.attributes['http.response.status_code']).toBe(200)

    const pull = spans.filter((s) => s.name === 'POST /sync/pull' && s.kind === SpanKind.CLIENT).at(-1)
    if (!pull) throw new Error('no client pull span')
    const pullTrace = spans.filter((s) => s.spanContext().traceId === pull.spanContext().traceId)
    expect(tree(pullTrace, pull)).toEqual({
      'POST /sync/pull [client]': [{ 'POST /sync/pull [server]': ['synchro.pull'] }],
    })
    const enginePull = pullTrace.find((s) => s.name === 'synchro.pull')
    expect(enginePull?.attributes).toMatchObject({ 'synchro.has_more': false })
    expect(typeof enginePull?.attributes['synchro.changes']).toBe('number')
  })

  it('a request without traceparent starts its own trace on the server; capture batches are root spans', async () => {
    exporter.reset()
    const res = await fetch(`${url}/sync/schema`, { headers: { 'x-user-id': user } })
    expect(res.status).toBe(200)
    await res.text()
    const schema = only(exporter.getFinishedSpans(), 'GET /sync/schema', SpanKind.SERVER)
    expect(schema.parentSpanContext).toBeUndefined()

    exporter.reset()
    await app.db.pool.query(`INSERT INTO orders (user_id, ship_address) VALUES ($1, 'direct write')`, [user])
    const { rows } = await app.db.pool.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')
    await consumer.waitForLsn(rows[0]!.lsn, 30_000)
    await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'synchro.capture.batch'), 10_000)
    const capture = exporter.getFinishedSpans().find((s) => s.name === 'synchro.capture.batch')
    expect(capture?.parentSpanContext).toBeUndefined()
    expect(capture?.attributes['synchro.changelog_rows']).toBeGreaterThanOrEqual(1)
    expect(capture?.attributes['synchro.lsn']).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/)
  })
})
