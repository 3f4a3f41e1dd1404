// Reads the body of POST /graphql once, within BODY_LIMIT_BYTES, and refuses what PostGraphile
// should never see: an unknown content type (415), a body over the limit (413), malformed JSON or a
// JSON body that is not an object (400) — each as a GraphQL-shaped error, logged with the request
// id. The parsed body and its operation (type, name) go to state(req).graphql: the rate limiter picks
// its class by it, and grafserv is handed the parsed object (api/postgraphile_plugin.ts) instead of
// re-reading the stream. NOTE for later middlewares: the request stream is consumed here; read
// state(req).graphql.body, not the stream.
import type { IncomingMessage } from 'node:http';
import { state } from '../context.ts';
import { sendError } from '../errors.ts';
import { classifyOperation } from '../graphql_operation.ts';
import type { Middleware } from './compose.ts';

const BAD_BODY = 'request body must be a JSON object {"query": "...", "variables": {...}, "operationName": "..."}; batched (array) requests are not supported';
const DRAIN_MAX = 16 * 1024 * 1024; // past this, an oversize body is not drained: the connection is dropped

type Read = { ok: true; buffer: Buffer } | { ok: false; tooLarge: boolean; received: number };

function readBody(req: IncomingMessage, limit: number): Promise<Read> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received <= limit) chunks.push(chunk);
      else if (received > DRAIN_MAX) req.destroy();
    });
    req.once('end', () => resolve(received > limit ? { ok: false, tooLarge: true, received } : { ok: true, buffer: Buffer.concat(chunks) }));
    req.once('error', () => resolve({ ok: false, tooLarge: false, received }));
    req.once('close', () => resolve({ ok: false, tooLarge: received > limit, received }));
  });
}

export function body(opts: { path: string; limitBytes: number }): Middleware {
  return async (req, res, next) => {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== opts.path) return next();
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && type !== 'application/graphql') {
      req.resume();
      return sendError(req, res, 415, 'UNSUPPORTED_MEDIA_TYPE',
        `content type ${JSON.stringify(type || 'none')} is not accepted: send application/json (or application/graphql)`);
    }
    // A framework's body parser (express.json()) read the stream already: take what it parsed.
    const parsedBefore = (req as { body?: unknown }).body;
    if (req.readableEnded && parsedBefore !== null && typeof parsedBefore === 'object' && !Buffer.isBuffer(parsedBefore)) {
      if (Array.isArray(parsedBefore)) return sendError(req, res, 400, 'BAD_REQUEST_BODY', BAD_BODY);
      const b = parsedBefore as Record<string, unknown>;
      state(req).graphql = { body: b, ...classifyOperation(b.query, b.operationName) };
      return next();
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > DRAIN_MAX) {
      res.setHeader('connection', 'close');
      req.resume();
      return sendError(req, res, 413, 'BODY_TOO_LARGE', `request body of ${declared} bytes is over the limit of ${opts.limitBytes} bytes (BODY_LIMIT_BYTES)`);
    }
    const read = await readBody(req, opts.limitBytes);
    if (!read.ok) {
      if (!read.tooLarge) return; // the client went away
      return sendError(req, res, 413, 'BODY_TOO_LARGE', `request body of ${read.received} bytes is over the limit of ${opts.limitBytes} bytes (BODY_LIMIT_BYTES)`);
    }
    let parsed: unknown;
    const text = read.buffer.toString('utf8');
    if (type === 'application/graphql') {
      parsed = { query: text };
    } else {
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        return sendError(req, res, 400, 'MALFORMED_JSON', `request body is not valid JSON: ${(e as Error).message}`);
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        return sendError(req, res, 400, 'BAD_REQUEST_BODY', BAD_BODY);
      }
    }
    const b = parsed as Record<string, unknown>;
    state(req).graphql = { body: b, ...classifyOperation(b.query, b.operationName) };
    await next();
  };
}
