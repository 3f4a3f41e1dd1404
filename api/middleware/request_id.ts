// Request id: every request gets an id generated here (a UUID), sent back in X-Request-Id, carried by
// the request's logger, and put in `request.id` for the transaction (api/context.ts), so audit_log,
// performance_metrics and error reports hold ids no client chose (a client could otherwise pin its
// writes to someone else's id, or make ids collide). A client's own X-Request-Id is kept apart, as the
// client request id: logged (clientReqId) and echoed in X-Client-Request-Id, never used as the id.
// One that is present but malformed (not 8–128 of A-Za-z0-9._:-) is answered 400 by
// rejectForgedRequestId(), which server.ts places after the logging and metrics middlewares so that
// the refusal is logged and counted like any other.
// Trace context: the request continues the caller's W3C trace (a valid `traceparent` header) or starts
// one (api/trace_context.ts); the response's `traceparent` carries the trace id and the request's own span
// id; the trace id is on every log line of the request (traceId). With OpenTelemetry on (api/telemetry.ts),
// the request's HTTP server span is started here and ended when the response is done.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { setState, type RequestState } from '../context.ts';
import { sendError } from '../errors.ts';
import { normaliseMethod, normaliseRoute } from '../metrics.ts';
import type { Telemetry } from '../telemetry.ts';
import { traceOf } from '../telemetry.ts';
import { continueTrace, formatTraceparent, parseTraceparent, type TraceContext } from '../trace_context.ts';
import type { Middleware } from './compose.ts';
import { finalStatus, isProbe, onDone } from './on_done.ts';

/** A client's X-Request-Id we keep (as its client request id): printable, 8 to 128 characters. */
export const WELL_FORMED_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
/** Where the client's own X-Request-Id is echoed. */
export const CLIENT_REQUEST_ID_HEADER = 'x-client-request-id';
const forged = new WeakMap<IncomingMessage, string>();

/**
 * The request's state (api/context.ts) with its id. With `header` off, X-Request-Id is neither read nor
 * echoed; the id is generated all the same, for the logs and request.id.
 */
export function requestId(logger: Logger, opts: { header: boolean; anonymousRole: string; telemetry?: Telemetry | null } = { header: true, anonymousRole: 'ballast_anonymous' }): Middleware {
  const telemetry = opts.telemetry ?? null;
  return async (req, res, next) => {
    const given = opts.header ? req.headers['x-request-id'] : undefined;
    const id = randomUUID();
    let clientId: string | undefined;
    if (typeof given === 'string' && WELL_FORMED_REQUEST_ID.test(given)) {
      clientId = given;
      res.setHeader(CLIENT_REQUEST_ID_HEADER, given);
    } else if (given !== undefined) {
      forged.set(req, Array.isArray(given) ? given.join(', ') : given);
    }
    if (opts.header) res.setHeader('x-request-id', id);
    const { trace, span } = requestTrace(req.headers.traceparent, telemetry, req.method, req.url);
    res.setHeader('traceparent', formatTraceparent(trace));
    const s = newState(id, logger, opts.anonymousRole, clientId, trace);
    if (span) {
      s.span = span;
      span.setAttribute('ballast.request_id', id);
      onDone(res, () => {
        const status = finalStatus(res);
        span.setAttribute('http.response.status_code', status);
        if (status >= 500) telemetry!.fail(span, new Error(s.error?.message ?? `answered ${status}`));
        span.end();
      });
    }
    setState(req, s);
    await next();
  };
}

/**
 * The request's trace context from its traceparent header (a new trace when absent or malformed) and,
 * when spans are exported, its HTTP server span (whose ids the trace context then carries).
 */
export function requestTrace(header: string | string[] | undefined, telemetry: Telemetry | null, method: string | undefined, url: string | undefined): { trace: TraceContext; span: Span | null } {
  if (telemetry && !isProbe(url)) { // probes and /metrics: no span (they would drown the requests)
    const parent = parseTraceparent(header);
    const m = normaliseMethod(method);
    const route = normaliseRoute(url);
    const span = telemetry.startSpan(`${m} ${route}`, { kind: 'server', parent, attributes: { 'http.request.method': m, 'http.route': route, 'url.path': (url ?? '').split('?')[0].slice(0, 200) } });
    if (span) return { trace: traceOf(span, parent?.parentSpanId), span };
  }
  return { trace: continueTrace(header), span: null };
}

/** A request's state before the JWT middleware has looked at it: anonymous. */
export function newState(id: string, logger: Logger, anonymousRole: string, clientRequestId: string | undefined, trace: TraceContext): RequestState {
  // The request's logger is made on first use: most requests log only pino-http's completion line
  // (api/middleware/logging.ts), and a pino child costs about as much as that line.
  let log: Logger | undefined;
  const bindings = clientRequestId === undefined ? { reqId: id, traceId: trace.traceId } : { reqId: id, clientReqId: clientRequestId, traceId: trace.traceId };
  return { id, clientRequestId, startedAt: performance.now(), trace, claims: null, role: anonymousRole, get log() { return (log ??= logger.child(bindings)); }, pgSettings: {} };
}

export function rejectForgedRequestId(): Middleware {
  return async (req, res, next) => {
    const bad = forged.get(req);
    if (bad === undefined) return next();
    const shown = JSON.stringify(bad.length > 64 ? `${bad.slice(0, 64)}…` : bad);
    sendError(req, res, 400, 'BAD_REQUEST_ID',
      `X-Request-Id ${shown} (${bad.length} characters) is not allowed: use 8 to 128 of A-Z a-z 0-9 . _ : -, or send none (the request's id is generated by the server either way; yours is echoed in X-Client-Request-Id)`);
  };
}
