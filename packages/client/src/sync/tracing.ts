/**
 * Client spans with W3C trace context, for apps that use OpenTelemetry. The SDK has no dependency on it: the
 * `tracer` option takes any object shaped like the part of an OpenTelemetry `Tracer` used here.
 */

/** What the SDK needs of a tracer: `trace.getTracer('my-app')` from `@opentelemetry/api` fits. */
export interface TracerLike {
  startSpan(name: string, options?: { kind?: number; attributes?: { [key: string]: string | number } }): SpanLike
}

/** What the SDK needs of a span. */
export interface SpanLike {
  spanContext(): { traceId: string; spanId: string; traceFlags: number }
  setAttribute(key: string, value: string | number): unknown
  setStatus(status: { code: number; message?: string }): unknown
  end(): void
}

// OpenTelemetry's SpanKind.CLIENT and SpanStatusCode.ERROR (stable values of the specification).
const CLIENT = 2
const ERROR = 2

const noop = () => {}

/**
 * Starts the client span of one request and, when it has a valid context, adds the W3C `traceparent` header that
 * lets the server continue the trace. Returns the function that ends the span with the HTTP status (or none: the
 * request failed before an answer).
 */
export function startRequestSpan(
  tracer: TracerLike | undefined,
  method: string,
  path: string,
  headers: Record<string, string>,
): (status?: number) => void {
  if (!tracer) return noop
  const attributes = { 'http.request.method': method, 'url.path': path }
  const span = tracer.startSpan(`${method} ${path}`, { kind: CLIENT, attributes })
  const { traceId, spanId, traceFlags } = span.spanContext()
  // A no-op tracer's context is all zeros: sending it would only confuse the server.
  if (/^(?!0+$)[0-9a-f]{32}$/.test(traceId) && /^(?!0+$)[0-9a-f]{16}$/.test(spanId)) {
    headers.traceparent = `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`
  }
  return (status) => {
    if (status !== undefined) span.setAttribute('http.response.status_code', status)
    if (status === undefined || status >= 500) span.setStatus({ code: ERROR })
    span.end()
  }
}
