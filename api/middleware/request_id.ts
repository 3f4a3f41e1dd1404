// Request id: accept a well-formed X-Request-Id (else generate a UUID), echo it, and give the request a
// logger that carries it. PostGraphile puts it in `request.id` for the transaction (api/context.ts).
// A request id that is present but malformed (too long, control characters, ...) is answered 400 by
// rejectForgedRequestId(), which server.ts places after the logging and metrics middlewares so that
// the refusal is logged and counted like any other; the response carries a fresh id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { setState, type RequestState } from '../context.ts';
import { sendError } from '../errors.ts';
import type { Middleware } from './compose.ts';

export const WELL_FORMED_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
const forged = new WeakMap<IncomingMessage, string>();

/**
 * The request's state (api/context.ts) with its id. With `header` off, X-Request-Id is neither read nor
 * echoed; the id is generated all the same, for the logs and request.id.
 */
export function requestId(logger: Logger, opts: { header: boolean; anonymousRole: string } = { header: true, anonymousRole: 'ballast_anonymous' }): Middleware {
  return async (req, res, next) => {
    const given = opts.header ? req.headers['x-request-id'] : undefined;
    let id: string;
    if (typeof given === 'string' && WELL_FORMED_REQUEST_ID.test(given)) {
      id = given;
    } else {
      id = randomUUID();
      if (given !== undefined) forged.set(req, Array.isArray(given) ? given.join(', ') : given);
    }
    if (opts.header) res.setHeader('x-request-id', id);
    setState(req, newState(id, logger, opts.anonymousRole));
    await next();
  };
}

/** A request's state before the JWT middleware has looked at it: anonymous. */
export function newState(id: string, logger: Logger, anonymousRole: string): RequestState {
  // The request's logger is made on first use: most requests log only pino-http's completion line
  // (api/middleware/logging.ts), and a pino child costs about as much as that line.
  let log: Logger | undefined;
  return { id, startedAt: performance.now(), claims: null, role: anonymousRole, get log() { return (log ??= logger.child({ reqId: id })); }, pgSettings: {} };
}

export function rejectForgedRequestId(): Middleware {
  return async (req, res, next) => {
    const bad = forged.get(req);
    if (bad === undefined) return next();
    const shown = JSON.stringify(bad.length > 64 ? `${bad.slice(0, 64)}…` : bad);
    sendError(req, res, 400, 'BAD_REQUEST_ID',
      `X-Request-Id ${shown} (${bad.length} characters) is not allowed: use 8 to 128 of A-Z a-z 0-9 . _ : -, or send none and one is generated`);
  };
}
