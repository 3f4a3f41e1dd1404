// /health/live and /health/ready (see api/health.ts); answered before any other middleware so that
// probes work while the server shuts down or rate-limits.
import type pg from 'pg';
import { latestCommittedMigration, readiness, sendJson } from '../health.ts';
import type { Middleware } from './compose.ts';

export function health(pool: pg.Pool, shuttingDown: () => boolean): Middleware {
  const expected = latestCommittedMigration();
  return async (req, res, next) => {
    if (req.url === '/health/live') return sendJson(res, 200, { live: true });
    if (req.url === '/health/ready') {
      const r = await readiness(pool, expected, shuttingDown()).catch((e: Error) => ({ ready: false, checks: { error: e.message } }));
      return sendJson(res, r.ready ? 200 : 503, r);
    }
    await next();
  };
}
