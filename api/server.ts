// The HTTP server: a fixed chain of middlewares (api/middleware/), PostGraphile last. The order:
// request id first; then the observers that act when a response is done (logging, metrics, tracing,
// error reports), so every answer below them — refusals included — is logged, counted and traced;
// then the checks in the order the README documents; PostGraphile last.
// Shutdown: turn not-ready, refuse new work with 503, let admitted requests finish (bounded by
// SHUTDOWN_GRACE_MS), close the listener, flush the write-behind buffers, release PostGraphile, close the pool.
import http from 'node:http';
import type { Logger } from 'pino';
import { postgraphile } from 'postgraphile';
import { grafserv } from 'postgraphile/grafserv/node';
import type { ApiConfig } from './config.ts';
import { makePreset } from './preset.ts';
import { makePool } from './pool.ts';
import { DbGuard } from './db_guard.ts';
import { ApiMetrics } from './metrics.ts';
import { DbGauges } from './db_gauges.ts';
import { makeTraceWriter } from './tracing.ts';
import { makeErrorReporter } from './error_reports.ts';
import { JwtVerifier } from './jwt.ts';
import { RateLimiter } from './rate_limit.ts';
import { ballastServerPlugin } from './postgraphile_plugin.ts';
import { compose, type Middleware } from './middleware/compose.ts';
import { rejectForgedRequestId, requestId } from './middleware/request_id.ts';
import { logClientErrors, logging } from './middleware/logging.ts';
import { metrics as metricsEndpoint } from './middleware/metrics.ts';
import { tracing } from './middleware/tracing.ts';
import { errorReports } from './middleware/error_reports.ts';
import { health } from './middleware/health.ts';
import { shutdownGuard, type Shutdown } from './middleware/shutdown_guard.ts';
import { cors } from './middleware/cors.ts';
import { admin } from './middleware/admin.ts';
import { body } from './middleware/body.ts';
import { jwt } from './middleware/jwt.ts';
import { dbGuard } from './middleware/db_guard.ts';
import { rateLimit } from './middleware/rate_limit.ts';
import { idempotency } from './middleware/idempotency.ts';
import { graphql } from './middleware/graphql.ts';

export type Api = { server: http.Server; port: number; close: (graceMs?: number) => Promise<void> };

export async function startApi(config: ApiConfig, logger: Logger): Promise<Api> {
  const pool = makePool(config, logger);
  const guard = new DbGuard(pool, logger);
  pool.on('error', (e) => guard.observe(e));
  const metrics = new ApiMetrics({ maxRoutes: config.metricsMaxRoutes, maxOperations: config.metricsMaxOperations, dbUp: () => !guard.isDown });
  const dbGauges = new DbGauges({ pool, registry: metrics.registry, cacheMs: config.metricsDbCacheMs, guard, logger });
  const traces = config.tracing ? makeTraceWriter(pool, config, metrics, logger) : null;
  const reports = config.errorReporting ? makeErrorReporter(pool, metrics, logger) : null;
  const verifier = new JwtVerifier(config);
  if (config.jwt.kind === 'none') logger.warn('no JWT key configured: requests are anonymous and any token is refused with 401');
  if (config.jwt.kind === 'hs256' && config.jwt.development) logger.warn('development JWT secret in use (GRAPHILE_ENV=development, JWT_SECRET unset)');

  const pgl = postgraphile({
    extends: [makePreset(pool, config.development)],
    plugins: [ballastServerPlugin({
      limits: { maxDepth: config.graphqlMaxDepth, maxCost: config.graphqlMaxCost, defaultListSize: config.graphqlDefaultListSize },
      guard,
    })],
    grafserv: { maxRequestLength: config.bodyLimitBytes },
  });
  await pgl.getSchema(); // fail at startup, not on the first request, when the database is unusable
  const shutdown: Shutdown = { shuttingDown: false, inFlight: 0 };
  const isShuttingDown = () => shutdown.shuttingDown;

  const chain: Middleware[] = [
    requestId(logger),
    logging(logger, config.probeLogSampleRate),
    metricsEndpoint(metrics, dbGauges),
    tracing(traces),
    errorReports(reports),
    rejectForgedRequestId(),
    health(pool, isShuttingDown),
    shutdownGuard(shutdown),
    cors(config.corsOrigins),
    admin(config),
    body({ path: '/graphql', limitBytes: config.bodyLimitBytes }),
    jwt(verifier),
    dbGuard(guard),
    rateLimit(new RateLimiter(pool, () => metrics.rateLimitDbTakes.inc()), config, guard, metrics),
    idempotency(pool, config), // after jwt: the key's scope is the JWT subject
    graphql(pgl.createServ(grafserv).createHandler()),
  ];
  const handle = compose(chain);
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err }, 'middleware failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ message: 'internal error' }] }));
    });
  });
  logClientErrors(server, logger);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  traces?.start();
  reports?.start();

  let closing: Promise<void> | null = null;
  function close(graceMs = config.shutdownGraceMs): Promise<void> {
    closing ??= (async () => {
      shutdown.shuttingDown = true;
      // Keep listening while admitted requests finish: new requests (new connections included) get 503.
      const deadline = Date.now() + graceMs;
      while (shutdown.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (shutdown.inFlight > 0) logger.warn({ graceMs, inFlight: shutdown.inFlight }, 'requests still running after the grace period; closing their connections');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      guard.stop();
      await Promise.all([traces?.stop(2000), reports?.stop(2000)]);
      await pgl.release();
      await pool.end();
    })();
    return closing;
  }
  return { server, port, close };
}
