import { trace } from '@opentelemetry/api'
import { describe, expect, it } from 'vitest'
import { type SpanLike, startRequestSpan, type TracerLike } from './tracing.js'

/** A tracer that hands out spans with fixed ids and records what happened to them. */
function recordingTracer(traceFlags: number) {
  const log: string[] = []
  const tracer: TracerLike = {
    startSpan(name, options) {
      log.push(`start ${name} kind=${options?.kind}`)
      const span: SpanLike = {
        spanContext: () => ({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags }),
        setAttribute: (k, v) => log.push(`${k}=${v}`),
        setStatus: (s) => log.push(`status=${s.code}`),
        end: () => log.push('end'),
      }
      return span
    },
  }
  return { tracer, log }
}

describe('client request spans', () => {
  it('sends the span context as a W3C traceparent header and ends the span with the status', () => {
    const { tracer, log } = recordingTracer(1)
    const headers: Record<string, string> = {}
    const end = startRequestSpan(tracer, 'POST', '/sync/push', headers)
    expect(headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
    end(200)
    expect(log).toEqual(['start POST /sync/push kind=2', 'http.response.status_code=200', 'end'])
  })

  it('marks a failed request (no answer, or a 5xx) as an error', () => {
    const { tracer, log } = recordingTracer(0)
    const headers: Record<string, string> = {}
    startRequestSpan(tracer, 'POST', '/sync/pull', headers)()
    expect(headers.traceparent).toMatch(/-00$/)
    expect(log.slice(1)).toEqual(['status=2', 'end'])
  })

  it('with OpenTelemetry’s API but no SDK registered (or no tracer at all), no header is sent', () => {
    const headers: Record<string, string> = {}
    startRequestSpan(trace.getTracer('app'), 'GET', '/sync/schema', headers)(200)
    startRequestSpan(undefined, 'GET', '/sync/schema', headers)(200)
    expect(headers).toEqual({})
  })
})
