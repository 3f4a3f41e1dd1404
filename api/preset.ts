// The PostGraphile V5 preset a user extends in their graphile.config: Amber, the user's schemas, the
// authenticator's pool, per-request pgSettings (role, request.id, request.jwt.claims) from the request's
// state (api/context.ts), "why denied" hints (api/why_denied.ts), and ballast's server plugin (depth and
// cost limits, database failures as HTTP statuses, and — when ballast's middlewares are not in front —
// the request id and JWT verification itself: api/postgraphile_plugin.ts).
import type pg from 'pg';
import type { Logger } from 'pino';
import { PostGraphileAmberPreset } from 'postgraphile/presets/amber';
import { makePgService } from 'postgraphile/adaptors/pg';
import { resolveApiConfig, type ApiConfig, type BallastOptions } from './config.ts';
import { pgSettingsFor, stateOf } from './context.ts';
import type { DbGuard } from './db_guard.ts';
import { JwtVerifier } from './jwt.ts';
import { makeLogger } from './logger.ts';
import { poolConfig, transactionSettings } from './pool.ts';
import { ballastServerPlugin } from './postgraphile_plugin.ts';
import type { Telemetry } from './telemetry.ts';
import { whyDeniedPlugin, maskError } from './why_denied.ts';

export const GRAPHQL_PATH = '/graphql';

/**
 * The preset on its own (graphile.config: `extends: [makeBallastPreset({ schemas: ['app_public'], connectionString })]`).
 * Behind createBallast's middlewares, use `ballast.preset` instead: it shares their pool, JWT verifier and database guard.
 */
export function makeBallastPreset(options: BallastOptions): GraphileConfig.Preset {
  const config = resolveApiConfig(options);
  const logger = config.logger ?? makeLogger(config.logLevel);
  return presetFor({ config, logger, pool: config.pool, guard: null, verifier: config.jwtEnabled ? new JwtVerifier(config, logger) : null });
}

/** The preset for a resolved configuration; `pool` null: PostGraphile makes (and ends) one from config.authUrl. */
export function presetFor(parts: { config: ApiConfig; logger: Logger; pool: pg.Pool | null; guard: DbGuard | null; verifier: JwtVerifier | null; telemetry?: Telemetry | null }): GraphileConfig.Preset {
  const { config, pool } = parts;
  const timeouts = transactionSettings(config); // the same for every request: computed once
  const pgService = pool
    ? makePgService({ pool, schemas: config.schemas })
    : makePgService({
      connectionString: config.authUrl,
      schemas: config.schemas,
      poolConfig: poolConfig(config), // no startup parameters: the timeouts are per transaction (below)
    });
  const limits = config.graphqlLimits
    ? {
      maxDepth: config.graphqlMaxDepth, maxCost: config.graphqlMaxCost, defaultListSize: config.graphqlDefaultListSize,
      defaultPageSize: config.graphqlDefaultPageSize, maxPageSize: config.graphqlMaxPageSize, introspection: config.graphqlIntrospection,
    }
    : null;
  const server = ballastServerPlugin({
    limits,
    guard: parts.guard,
    standalone: { logger: parts.logger, verifier: parts.verifier, requestIdHeader: config.requestIdHeader, anonymousRole: config.anonymousRole },
    telemetry: parts.telemetry ?? null, // OpenTelemetry spans of the operation and its transactions (api/telemetry.ts)
  });
  return {
    extends: [PostGraphileAmberPreset],
    plugins: config.whyDenied ? [whyDeniedPlugin(config.schemas, config.whyDeniedMaxQueries), server] : [server],
    pgServices: [pgService],
    grafserv: {
      graphqlPath: GRAPHQL_PATH,
      graphiql: config.development,
      graphiqlPath: '/',
      watch: false,
      maxRequestLength: config.bodyLimitBytes,
      ...(config.whyDenied ? { maskError } : {}),
    },
    grafast: {
      context(requestContext) {
        // The API's timeouts first (api/pool.ts: per transaction, so they never outlive it on a pooled
        // server connection), then the request's role, claims and id.
        const s = stateOf(requestContext);
        const pgSettings = { ...timeouts, ...pgSettingsFor(s, config.anonymousRole) };
        // A keyed mutation (api/middleware/idempotency.ts) runs every statement on the client of the
        // transaction that claimed its key; this replaces the pgService's withPgClient (grafast applies the
        // preset's context after PgContextPlugin set that one), and the server plugin still wraps it.
        return s?.withPgClient ? { pgSettings, withPgClient: s.withPgClient } : { pgSettings };
      },
    },
  };
}
