// Shutdown guard: once the server is shutting down, new work gets 503 (health endpoints come earlier)
// while the requests already admitted finish: it counts them, and api/server.ts waits (bounded by
// SHUTDOWN_GRACE_MS) until none is left before it closes the listener and the pool.
import { sendError } from '../errors.ts';
import type { Middleware } from './compose.ts';
import { onDone } from './on_done.ts';

export type Shutdown = { shuttingDown: boolean; inFlight: number };

export function shutdownGuard(shutdown: Shutdown): Middleware {
  return async (req, res, next) => {
    if (shutdown.shuttingDown) {
      res.setHeader('connection', 'close');
      return sendError(req, res, 503, 'SHUTTING_DOWN', 'server is shutting down; retry on another instance', { 'retry-after': '1' });
    }
    shutdown.inFlight += 1;
    onDone(res, () => { shutdown.inFlight -= 1; });
    await next();
  };
}
