// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` header
// "00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>". A request that brings a valid one
// continues its trace; one without (or with a malformed one) starts a new trace. The response carries
// the request's own traceparent (its trace id and the span id of the API's work), so a client or a proxy
// can find the request in the logs, in ballast.performance_metrics, in its error report, in the worker
// jobs it queued and in the OpenTelemetry collector. Shared by the API and the worker (job payloads).
import { randomBytes } from 'node:crypto';

export type TraceContext = {
  /** 32 lowercase hex digits, never all zeros. */
  traceId: string;
  /** 16 lowercase hex digits: the span of this process's work (the API's request, the worker's job). */
  spanId: string;
  /** The caller's span id, when the trace came from outside. */
  parentSpanId?: string;
  /** W3C trace flags; bit 0 = sampled. */
  flags: number;
};

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * The caller's trace from a traceparent header; undefined when absent or malformed (version ff, an
 * all-zero id, upper-case hex, a version-00 header with extra fields are all malformed). A later version's
 * header is read by its first four fields, as the specification asks.
 */
export function parseTraceparent(header: string | string[] | undefined): { traceId: string; parentSpanId: string; flags: number } | undefined {
  if (typeof header !== 'string' || header.length > 512) return undefined;
  const m = TRACEPARENT.exec(header.trim());
  if (!m) return undefined;
  const [, version, traceId, parentSpanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return undefined;
  return { traceId, parentSpanId, flags: parseInt(flags, 16) };
}

export function formatTraceparent(t: Pick<TraceContext, 'traceId' | 'spanId' | 'flags'>): string {
  return `00-${t.traceId}-${t.spanId}-${(t.flags & 0xff).toString(16).padStart(2, '0')}`;
}

function hex(bytes: number, zero: string): string {
  for (;;) {
    const h = randomBytes(bytes).toString('hex');
    if (h !== zero) return h;
  }
}

export const newTraceId = (): string => hex(16, ZERO_TRACE);
export const newSpanId = (): string => hex(8, ZERO_SPAN);

/** This process's span in the caller's trace (a new trace, sampled, when the header is absent or malformed). */
export function continueTrace(header: string | string[] | undefined): TraceContext {
  const parent = header === undefined ? undefined : parseTraceparent(header);
  if (parent) return { traceId: parent.traceId, spanId: newSpanId(), parentSpanId: parent.parentSpanId, flags: parent.flags };
  const h = randomBytes(24).toString('hex'); // one call for both ids (the request path)
  const traceId = h.slice(0, 32);
  const spanId = h.slice(32);
  return traceId === ZERO_TRACE || spanId === ZERO_SPAN ? continueTrace(undefined) : { traceId, spanId, flags: 1 };
}

/**
 * Whether a request's row goes to ballast.performance_metrics at sample rate `rate` (0..1), decided by
 * its trace id (its last 8 hex digits as a fraction), so every service sampling by trace id keeps the
 * same traces. 1 keeps every row, 0 none (5xx and slow requests are kept by the caller anyway).
 */
export function sampledByTraceId(traceId: string, rate: number): boolean {
  if (rate >= 1) return true;
  if (rate <= 0) return false;
  return parseInt(traceId.slice(24), 16) / 0x1_0000_0000 < rate;
}
