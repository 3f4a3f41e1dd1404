// Request id: accept a well-formed X-Request-Id (else generate a UUID), echo it, and give the request a
// logger that carries it. PostGraphile puts it in `request.id` for the transaction (api/context.ts).
// A request id that is present but malformed (too long, control characters, ...) is answered 400 by
// rejectForgedRequestId(), which server.ts places after the logging and metrics middlewares so that
// the refusal is logged and counted like any other; the response carries a fresh id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { setState } from '../context.ts';
import { sendError } from '../errors.ts';
import type { Middleware } from './compose.ts';

export const WELL_FORMED_REQUEST_ID = /^[A-Za-z0-9._:-]{8,128}$/;
const forged = new WeakMap<IncomingMessage, string>();

export function requestId(logger: Logger): Middleware {
  return async (req, res, next) => {
    const given = req.headers['x-request-id'];
    let id: string;
    if (typeof given === 'string' && WELL_FORMED_REQUEST_ID.test(given)) {
      id = given;
    } else {
      id = randomUUID();
      if (given !== undefined) forged.set(req, Array.isArray(given) ? given.join(', ') : given);
    }
    res.setHeader('x-request-id', id);
    // The request's logger is made on first use: most requests log only pino-http's completion line
    // (api/middleware/logging.ts), and a pino child costs about as much as that line.
    let log: Logger | undefined;
    setState(req, { id, startedAt: performance.now(), claims: null, role: 'ballast_anonymous', get log() { return (log ??= logger.child({ reqId: id })); }, pgSettings: {} });
    await next();
  };
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
