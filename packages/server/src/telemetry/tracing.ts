/**
 * OpenTelemetry spans through `@opentelemetry/api` only: every call is a no-op until the host registers an SDK
 * (see docs/deployment.md). All of Synchro's instrumentation goes through this module.
 */
import {
  type Attributes,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api'
import type { WalTransaction } from '../changelog/changes.js'
import type { ApplyOptions, ApplyResult, BatchApplier } from '../changelog/writer.js'
import { captureAttributes, captureResult } from './attributes.js'

/** Instrumentation scope of every Synchro span. */
export const TRACER_NAME = '@synchro/server'

// A proxy tracer: it delegates to whatever provider the host registers, even one registered after this import.
const tracer = trace.getTracer(TRACER_NAME)

/**
 * Runs `fn` inside a span named `name` (the active span while it runs, so spans started in it are its children).
 * A throw marks the span as an error and is rethrown; `result` turns the value into attributes set at the end.
 */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  result?: (value: T) => Attributes,
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, (span) => finish(span, fn, result))
}

async function finish<T>(
  span: Span,
  fn: (span: Span) => Promise<T>,
  result: ((value: T) => Attributes) | undefined,
): Promise<T> {
  try {
    const value = await fn(span)
    if (result && span.isRecording()) span.setAttributes(result(value))
    return value
  } catch (err) {
    span.recordException(err instanceof Error ? err : String(err))
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) })
    throw err
  } finally {
    span.end()
  }
}

const headerGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
}

/**
 * The server span of one HTTP request, `{method} {route}` (route `other` for unknown paths), continuing the trace
 * of the caller's W3C `traceparent` header when it has one. For `GET /sync/events` it ends when the stream opens.
 */
export function traceRequest(request: Request, route: string, handle: () => Promise<Response>): Promise<Response> {
  const parent = propagation.extract(context.active(), request.headers, headerGetter)
  const attributes: Attributes = { 'http.request.method': request.method, 'http.route': route }
  const options = { kind: SpanKind.SERVER, attributes }
  return tracer.startActiveSpan(`${request.method} ${route}`, options, parent, (span) =>
    finish(span, () => handle().then((response) => statusOf(span, response)), undefined),
  )
}

function statusOf(span: Span, response: Response): Response {
  span.setAttribute('http.response.status_code', response.status)
  if (response.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
  return response
}

/** One capture batch (WAL transactions → changelog rows, one database transaction) as a root span. */
export function tracedApply(
  applier: BatchApplier,
  batch: readonly WalTransaction[],
  options: ApplyOptions,
): Promise<ApplyResult> {
  return withSpan('synchro.capture.batch', captureAttributes(batch), () => applier.apply(batch, options), captureResult)
}
