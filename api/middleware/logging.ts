// Request logging with pino-http: one line per request, with its request id (reqId) and W3C trace id (traceId), the error a
// middleware answered with, and the GraphQL operation. Authorization headers, cookies and any
// `password` field are redacted (api/logger.ts). Health and metrics requests are sampled
// (PROBE_LOG_SAMPLE_RATE, 1% by default); errors are always logged: 5xx at error, 4xx at warn.
import type http from 'node:http';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import { maybeState, state } from '../context.ts';
import type { Middleware } from './compose.ts';
import { isProbe } from './on_done.ts';

function extras(req: http.IncomingMessage): Record<string, unknown> {
  const s = maybeState(req);
  const props: Record<string, unknown> = { reqId: req.id }; // pino-http set it from genReqId: the request's id
  if (s) props.traceId = s.trace.traceId;
  if (s?.clientRequestId !== undefined) props.clientReqId = s.clientRequestId;
  if (s?.error) props.error = s.error;
  if (s?.graphql) props.operation = { type: s.graphql.operationType, name: s.graphql.operationName };
  if (s?.claims) props.sub = s.claims.sub;
  return props;
}

export function logging(logger: Logger, probeSampleRate: number): Middleware {
  const httpLogger = pinoHttp({
    logger: logger as never, // pino-http 11 is typed against pino 10; the API's logger is pino 9
    genReqId: (req) => state(req).id,
    // Not quietReqLogger: that makes a second pino child per request only to carry reqId, which the
    // completion line gets from extras() instead (and the request's own logger from request_id.ts).
    quietReqLogger: false,
    customLogLevel: (req, res, err) => {
      if (err || res.statusCode >= 500) return 'error';
      if (res.statusCode >= 400) return 'warn';
      if (isProbe(req.url) && Math.random() >= probeSampleRate) return 'silent';
      return 'info';
    },
    // Extra fields on the completion line (not customProps: that path needs pino 10's symbols, and the
    // logger is pino 9).
    customSuccessObject: (req, _res, val) => ({ ...val, ...extras(req) }),
    customErrorObject: (req, _res, err, val) => {
      // pino-http invents an Error for any 5xx; its stack says nothing, the error field says why
      const { err: _invented, ...rest } = val as Record<string, unknown>;
      return /^failed with status code \d+$/.test(err.message) ? { ...rest, ...extras(req) } : { ...val, ...extras(req) };
    },
  });
  return async (req, res, next) => {
    httpLogger(req, res);
    await next();
  };
}

/**
 * Requests Node's HTTP parser refuses before any middleware sees them (a header with control
 * characters, a malformed request line): answered 400 and logged, like the rest.
 */
export function logClientErrors(server: http.Server, logger: Logger): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    logger.warn({ err: { code: err.code, message: err.message }, remoteAddress: (socket as { remoteAddress?: string }).remoteAddress }, 'malformed HTTP request refused');
    if (socket.writable && !(socket as { _httpMessage?: unknown })._httpMessage) {
      const body = JSON.stringify({ errors: [{ message: `malformed HTTP request: ${err.code ?? err.message}`, extensions: { code: 'BAD_HTTP_REQUEST' } }] });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    } else {
      socket.destroy();
    }
  });
}
