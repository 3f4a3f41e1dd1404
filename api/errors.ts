// GraphQL-shaped error responses for requests a middleware refuses ({"errors": [{message, extensions}]}),
// recorded on the request's state so logging, tracing and error reporting see why.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './health.ts';
import { state } from './context.ts';

/** `detail` (logs and error reports only, never sent to the client) defaults to `message`. */
export function sendError(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string,
  headers: Record<string, string> = {}, detail?: string): void {
  const s = state(req);
  s.error = { status, code, message: detail ?? message };
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  sendJson(res, status, { errors: [{ message, extensions: { code, requestId: s.id } }] });
}
