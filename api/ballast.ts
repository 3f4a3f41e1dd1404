// createBallast: the preset and the HTTP middlewares of one API process, sharing one pool, one JWT
// verifier, one database guard, one metrics registry and one shutdown state.
//
// The middlewares run in a fixed order (README "API server"): request id first; then the observers
// that act when a response is done (logging, metrics, tracing, error reports), so every answer below
// them — refusals included — is logged, counted and traced; then the checks; PostGraphile comes after
// them (grafserv's node or Express adaptor, or createServer's chain). Each is a node-style handler,
// (req, res, next), in `middlewares`; `handler` is all of them in order, as one.
import type pg from 'pg';
import type { Logger } from 'pino';
import { resolveApiConfig, type ApiConfig, type BallastOptions } from './config.ts';
import { DbGauges } from './db_gauges.ts';
import { DbGuard } from './db_guard.ts';
import { makeErrorReporter } from './error_reports.ts';
import { JwtVerifier } from './jwt.ts';
import { makeLogger } from './logger.ts';
import { ApiMetrics } from './metrics.ts';
import { makePool } from './pool.ts';
import { GRAPHQL_PATH, presetFor } from './preset.ts';
import { RateLimiter } from './rate_limit.ts';
import { kitVersion } from '../src/kit_files.ts';
import { startTelemetry, type Telemetry } from './telemetry.ts';
import { makeTraceWriter } from './tracing.ts';
import { body } from './middleware/body.ts';
import { chain, type Middleware } from './middleware/compose.ts';
import { allowedHosts } from './middleware/allowed_hosts.ts';
import { cors } from './middleware/cors.ts';
import { dbGuard } from './middleware/db_guard.ts';
import { errorReports } from './middleware/error_reports.ts';
import { health } from './middleware/health.ts';
import { idempotency } from './middleware/idempotency.ts';
import { jwt } from './middleware/jwt.ts';
import { logging } from './middleware/logging.ts';
import { metrics as metricsEndpoint } from './middleware/metrics.ts';
import { fromNodeMiddleware, toNodeMiddleware, type NodeMiddleware } from './middleware/node.ts';
import { rateLimit } from './middleware/rate_limit.ts';
import { rejectForgedRequestId, requestId } from './middleware/request_id.ts';
import { shutdownGuard, type Shutdown } from './middleware/shutdown_guard.ts';
import { tracing } from './middleware/tracing.ts';

/** The middlewares' names, in the order they run; a piece switched off is absent. */
export type MiddlewareName =
  | 'requestId' | 'logging' | 'metrics' | 'tracing' | 'errorReports' | 'rejectForgedRequestId' | 'health'
  | 'shutdownGuard' | 'allowedHosts' | 'cors' | 'yours' | 'body' | 'jwt' | 'dbGuard' | 'rateLimit' | 'idempotency';

export type Ballast = {
  config: ApiConfig;
  logger: Logger;
  /** The authenticator's pool: yours when you gave one, else ballast's (ended by close()). */
  pool: pg.Pool;
  /** Extend it in your graphile.config (`extends: [ballast.preset]`). */
  preset: GraphileConfig.Preset;
  /** Each middleware as a node-style handler, in the order they must run. */
  middlewares: Partial<Record<MiddlewareName, NodeMiddleware>>;
  /** All the middlewares, in order, as one node-style handler: mount it before PostGraphile. */
  handler: NodeMiddleware;
  /** The same, as ballast's internal async middleware (createServer appends PostGraphile to it). */
  chain: Middleware;
  /** OpenTelemetry export (OTEL_EXPORTER_OTLP_ENDPOINT), null when off; createServer awaits telemetry.ready before listening. */
  telemetry: Telemetry | null;
  /** Starts shutting down: /health/ready turns 503, new requests get 503, admitted ones finish; resolves when none is left or graceMs passed. */
  drain: (graceMs?: number) => Promise<void>;
  /** Stops the background work (database guard's probe, trace and error-report buffers flushed) and ends ballast's own pool. Release PostGraphile first. */
  close: () => Promise<void>;
};

/** The preset and the middlewares, from options (see BallastOptions for every default). */
export function createBallast(options: BallastOptions): Ballast {
  const config = resolveApiConfig(options);
  const logger = config.logger ?? makeLogger(config.logLevel);
  const ownPool = config.pool === null;
  const pool = config.pool ?? makePool(config, logger);
  const guard = new DbGuard(pool, logger);
  pool.on('error', (e) => guard.observe(e));
  const metrics = new ApiMetrics({ maxRoutes: config.metricsMaxRoutes, maxOperations: config.metricsMaxOperations, dbUp: () => !guard.isDown });
  const traces = config.tracing ? makeTraceWriter(pool, config, metrics, logger) : null;
  const reports = config.errorReporting ? makeErrorReporter(pool, metrics, logger) : null;
  const telemetry = config.telemetry ? startTelemetry(config.telemetry, logger, kitVersion()) : null;
  const verifier = config.jwtEnabled ? new JwtVerifier(config, logger) : null;
  if (config.jwtEnabled && config.jwt.kind === 'none') logger.warn('no JWT key configured: requests are anonymous and any token is refused with 401');
  if (config.jwt.kind === 'hs256' && config.jwt.development) logger.warn('development JWT secret in use (GRAPHILE_ENV=development, JWT_SECRET unset)');
  const shutdown: Shutdown = { shuttingDown: false, inFlight: 0 };
  const rateLimited = config.rateLimits.query !== null || config.rateLimits.mutation !== null;

  const list: [MiddlewareName, Middleware | null][] = [
    ['requestId', requestId(logger, { header: config.requestIdHeader, anonymousRole: config.anonymousRole, telemetry })],
    ['logging', config.logging ? logging(logger, config.probeLogSampleRate) : null],
    ['metrics', config.metrics ? metricsEndpoint(metrics, new DbGauges({ pool, registry: metrics.registry, cacheMs: config.metricsDbCacheMs, guard, logger })) : null],
    ['tracing', traces ? tracing(traces, { sampleRate: config.traceSampleRate, slowMs: config.traceSlowMs }) : null],
    ['errorReports', reports ? errorReports(reports) : null],
    ['rejectForgedRequestId', config.requestIdHeader ? rejectForgedRequestId() : null],
    ['health', config.health ? health(pool, () => shutdown.shuttingDown, { readyCacheMs: config.healthReadyCacheMs, logger, dbDown: () => guard.isDown }) : null],
    ['shutdownGuard', config.shutdownGuard ? shutdownGuard(shutdown) : null],
    ['allowedHosts', config.allowedHosts ? allowedHosts(config.allowedHosts) : null],
    ['cors', config.cors ? cors(config.corsOrigins, config.allowedHosts) : null],
    ['yours', config.middlewares.length ? chain(config.middlewares.map(fromNodeMiddleware)) : null],
    ['body', body({ path: GRAPHQL_PATH, limitBytes: config.bodyLimitBytes })],
    ['jwt', verifier ? jwt(verifier) : null],
    ['dbGuard', config.dbGuard ? dbGuard(guard) : null],
    ['rateLimit', rateLimited ? rateLimit(new RateLimiter(pool, () => metrics.rateLimitDbTakes.inc()), config, guard, metrics) : null],
    ['idempotency', config.idempotency ? idempotency(pool, config) : null], // after jwt: the key's scope is the JWT subject, organisation and role
  ];
  const present = list.filter((e): e is [MiddlewareName, Middleware] => e[1] !== null);
  const all = chain(present.map(([, mw]) => mw));
  traces?.start();
  reports?.start();

  let closing: Promise<void> | null = null;
  return {
    config,
    logger,
    pool,
    preset: presetFor({ config, logger, pool, guard, verifier, telemetry }),
    telemetry,
    middlewares: Object.fromEntries(present.map(([name, mw]) => [name, toNodeMiddleware(mw)])),
    handler: toNodeMiddleware(all),
    chain: all,
    async drain(graceMs = config.shutdownGraceMs) {
      shutdown.shuttingDown = true;
      const deadline = Date.now() + graceMs;
      while (shutdown.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (shutdown.inFlight > 0) logger.warn({ graceMs, inFlight: shutdown.inFlight }, 'requests still running after the grace period');
    },
    close() {
      closing ??= (async () => {
        shutdown.shuttingDown = true;
        guard.stop();
        await Promise.all([traces?.stop(2000), reports?.stop(2000)]);
        await telemetry?.shutdown(2000); // the last spans, after the requests that made them
        if (ownPool) await pool.end();
      })();
      return closing;
    },
  };
}
