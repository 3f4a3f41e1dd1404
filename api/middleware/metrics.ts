// Metrics: observes every request when it is done (duration by method, normalised route, status;
// GraphQL operations by name) and serves GET /metrics (before the shutdown guard, so it can be
// scraped while the server drains). Database gauges are refreshed on scrape, cached (api/db_gauges.ts).
import { maybeState } from '../context.ts';
import type { DbGauges } from '../db_gauges.ts';
import type { ApiMetrics } from '../metrics.ts';
import type { Middleware } from './compose.ts';
import { finalStatus, onDone } from './on_done.ts';

export function metrics(m: ApiMetrics, dbGauges: DbGauges): Middleware {
  return async (req, res, next) => {
    const started = performance.now();
    onDone(res, () => {
      m.observeRequest(req.method, req.url, finalStatus(res), (performance.now() - started) / 1000);
      const g = maybeState(req)?.graphql;
      if (g) m.countOperation(g.operationName, g.operationType);
    });
    if (req.url === '/metrics' && (req.method === 'GET' || req.method === 'HEAD')) {
      await dbGauges.refresh();
      const text = await m.registry.metrics();
      res.writeHead(200, { 'content-type': m.registry.contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    await next();
  };
}
