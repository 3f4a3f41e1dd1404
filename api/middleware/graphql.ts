// The last middleware: PostGraphile (grafserv's node handler); anything it does not serve is a 404.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { state } from '../context.ts';
import { sendError } from '../errors.ts';
import type { Middleware } from './compose.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void | Promise<void>;

export function graphql(handler: Handler): Middleware {
  return (req, res) => new Promise<void>((resolve) => {
    res.once('finish', resolve);
    res.once('close', resolve);
    void handler(req, res, (err?: unknown) => {
      if (err) {
        state(req).log.error({ err }, 'request failed');
        sendError(req, res, 500, 'INTERNAL_SERVER_ERROR', 'internal error', {}, `internal error: ${(err as Error)?.message ?? String(err)}`);
      } else {
        sendError(req, res, 404, 'NOT_FOUND', `no route for ${req.method} ${(req.url ?? '').split('?')[0].slice(0, 200)}`);
      }
      resolve();
    });
  });
}
