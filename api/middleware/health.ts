// /health/live and /health/ready (see api/health.ts); answered before any other middleware so that
// probes work while the server shuts down or rate-limits. Readiness asks the database at most once per
// readyCacheMs (ReadinessCache); a database error is logged, and the probe only hears "unavailable".
import type pg from 'pg';
import type { Logger } from 'pino';
import { DATABASE_UNAVAILABLE, latestCommittedMigration, readiness, ReadinessCache, sendJson } from '../health.ts';
import type { Middleware } from './compose.ts';

export function health(pool: pg.Pool, shuttingDown: () => boolean,
                       opts: { readyCacheMs: number; logger?: Logger; dbDown?: () => boolean } = { readyCacheMs: 1000 }): Middleware {
  const expected = latestCommittedMigration();
  const cache = new ReadinessCache(() => readiness(pool, expected, false), opts.readyCacheMs,
    (detail) => opts.logger?.warn({ detail }, 'not ready: the database did not answer the readiness check'));
  return async (req, res, next) => {
    if (req.url === '/health/live') return sendJson(res, 200, { live: true });
    if (req.url === '/health/ready') {
      // The database guard's verdict is immediate (no query): a database it saw go away is not ready at once.
      const r = opts.dbDown?.()
        ? { ready: false, checks: { ...(shuttingDown() ? { shutdown: 'shutting down' } : {}), database: DATABASE_UNAVAILABLE } }
        : await cache.get(shuttingDown());
      return sendJson(res, r.ready ? 200 : 503, r);
    }
    await next();
  };
}
