// While the database is known to be unreachable (api/db_guard.ts), answer 503 at once with
// Retry-After instead of letting each request wait for a connection that will not come.
import type { DbGuard } from '../db_guard.ts';
import { sendError } from '../errors.ts';
import type { Middleware } from './compose.ts';

export function dbGuard(guard: DbGuard): Middleware {
  return async (req, res, next) => {
    if (guard.isDown) {
      return sendError(req, res, 503, 'DATABASE_UNAVAILABLE', 'the database is unavailable; retry shortly', { 'retry-after': '1' });
    }
    await next();
  };
}
