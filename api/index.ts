// ballast/postgraphile: production rails for a PostGraphile V5 API, in three sizes.
//
//   1. The preset alone, in your graphile.config (JWT → role and claims, request ids, "why denied"
//      hints, depth and cost limits, database failures as 503/504):
//        extends: [makeBallastPreset({ schemas: ['app_public'], connectionString, jwt: { secret } })]
//   2. The preset and the HTTP middlewares sharing one pool (logging, /metrics, tracing, error reports,
//      health, shutdown guard, CORS, body limit, rate limits, Idempotency-Key), for grafserv's node
//      adaptor, Express or Connect:
//        const ballast = createBallast(options);
//        const pgl = postgraphile({ extends: [ballast.preset] });
//        app.use(ballast.handler);                       // or ballast.middlewares.requestId, … one by one
//        await pgl.createServ(grafserv).addTo(app, server);
//   3. The whole server: startApi(options), or runApi(() => apiConfigFromEnv(process.env, { schemas })) as a main.
//
// Every piece can be switched off (`false`); every default is in BallastOptions (api/config.ts).
export { makeBallastPreset } from './preset.ts';
export { createBallast, type Ballast, type MiddlewareName } from './ballast.ts';
export { createServer, startApi, runApi, type Api, type ApiServer, type ServerOptions } from './server.ts';
export { apiConfigFromEnv, authenticatorUrlFromEnv, type EnvOptions } from './env.ts';
export {
  ConfigError, resolveApiConfig, DEVELOPMENT_JWT_SECRET, JWT_SECRET_MIN_LENGTH,
  type ApiConfig, type AppRole, type BallastOptions, type JwtOptions, type RateLimit,
} from './config.ts';
export { toNodeMiddleware, fromNodeMiddleware, type NodeMiddleware } from './middleware/node.ts';
export { maybeState as requestState, type RequestState, type Claims } from './context.ts';
export { sendError } from './errors.ts';
// W3C trace context: requestState(req).trace; put formatTraceparent(trace) in a job's payload to continue the trace there
export { parseTraceparent, formatTraceparent, type TraceContext } from './trace_context.ts';
export { makeLogger } from './logger.ts';
// a pool of your own behind PgBouncer in transaction mode: new pg.Pool({ Client: UnnamedStatementsClient, … })
export { UnnamedStatementsClient, transactionSettings } from './pool.ts';
