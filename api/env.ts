// The API's options from environment variables (the table in README "Configuration"), checked as a
// whole: every variable is parsed, then the options are resolved (api/config.ts) with the variables'
// names in the messages, and every problem is reported at once in one ConfigError.
import { KIT_ROLES } from '../src/constants.ts';
import { telemetrySettingsFromEnv } from './telemetry.ts';
import {
  APP_ROLES, ConfigError, DEVELOPMENT_JWT_SECRET, GRAPHQL_NAME, LOG_LEVELS, RANGES, resolveInto,
  type AppRole, type BallastOptions, type Labels, type RangeName, type RateLimit,
} from './config.ts';

/** The variable behind each option, for messages. */
export const ENV_LABELS: Labels = {
  schemas: 'schemas',
  connectionString: 'AUTH_DATABASE_URL',
  pool: 'pool',
  logLevel: 'LOG_LEVEL',
  port: 'PORT',
  'database.poolMax': 'DB_POOL_MAX',
  'database.connectTimeoutMs': 'DB_CONNECT_TIMEOUT_MS',
  'database.statementTimeoutMs': 'DB_STATEMENT_TIMEOUT_MS',
  'database.lockTimeoutMs': 'DB_LOCK_TIMEOUT_MS',
  'database.idleInTransactionTimeoutMs': 'DB_IDLE_IN_TRANSACTION_TIMEOUT_MS',
  'database.poolIdleTimeoutMs': 'DB_POOL_IDLE_TIMEOUT_MS',
  'database.preparedStatements': 'DB_PREPARED_STATEMENTS',
  'idempotency.requiredMutations': 'IDEMPOTENCY_REQUIRED_MUTATIONS',
  'idempotency.leaseSeconds': 'IDEMPOTENCY_LEASE_SECONDS',
  'idempotency.ttlSeconds': 'IDEMPOTENCY_TTL_SECONDS',
  'idempotency.lockWaitMs': 'IDEMPOTENCY_LOCK_WAIT_MS',
  'shutdown.graceMs': 'SHUTDOWN_GRACE_MS',
  'cors.origins': 'CORS_ORIGINS',
  allowedHosts: 'ALLOWED_HOSTS',
  bodyLimitBytes: 'BODY_LIMIT_BYTES',
  'limits.maxDepth': 'GRAPHQL_MAX_DEPTH',
  'limits.maxCost': 'GRAPHQL_MAX_COST',
  'limits.defaultListSize': 'GRAPHQL_DEFAULT_LIST_SIZE',
  'limits.defaultPageSize': 'GRAPHQL_DEFAULT_PAGE_SIZE',
  'limits.maxPageSize': 'GRAPHQL_MAX_PAGE_SIZE',
  'limits.introspection': 'GRAPHQL_INTROSPECTION',
  'jwt.secret': 'JWT_SECRET',
  'jwt.publicKey': 'JWT_PUBLIC_KEY_FILE',
  'jwt.publicKeyFile': 'JWT_PUBLIC_KEY_FILE',
  'jwt.jwks': 'JWT_JWKS_FILE',
  'jwt.jwksFile': 'JWT_JWKS_FILE',
  'jwt.jwksUrl': 'JWT_JWKS_URL',
  'jwt.jwksCooldownS': 'JWT_JWKS_COOLDOWN_S',
  'jwt.jwksCacheMaxAgeS': 'JWT_JWKS_CACHE_MAX_AGE_S',
  'jwt.jwksTimeoutMs': 'JWT_JWKS_TIMEOUT_MS',
  'jwt.algorithms': 'JWT_ALGORITHMS',
  'jwt.clockToleranceS': 'JWT_CLOCK_TOLERANCE_S',
  'jwt.orgClaim': 'JWT_ORG_CLAIM',
  'jwt.roleClaim': 'JWT_ROLE_CLAIM',
  'jwt.roleMap': 'JWT_ROLE_MAP',
  'jwt.anonymousRole': 'DB_ANONYMOUS_ROLE',
  'rateLimit.query': 'RATE_LIMIT_QUERY',
  'rateLimit.mutation': 'RATE_LIMIT_MUTATION',
  'rateLimit.trustProxyHops': 'TRUST_PROXY_HOPS',
  'rateLimit.trustedProxies': 'TRUSTED_PROXIES',
  'logging.probeSampleRate': 'PROBE_LOG_SAMPLE_RATE',
  'metrics.maxRoutes': 'METRICS_MAX_ROUTES',
  'metrics.maxOperations': 'METRICS_MAX_OPERATIONS',
  'metrics.dbCacheMs': 'METRICS_DB_CACHE_MS',
  'tracing.flushMs': 'TRACE_FLUSH_MS',
  'tracing.batchRows': 'TRACE_BATCH_ROWS',
  'tracing.bufferMax': 'TRACE_BUFFER_MAX',
  'tracing.sampleRate': 'REQUEST_TRACING_SAMPLE',
  'tracing.slowMs': 'REQUEST_TRACING_SLOW_MS',
  'telemetry.tracesUrl': 'OTEL_EXPORTER_OTLP_ENDPOINT',
  'health.readyCacheMs': 'HEALTH_READY_CACHE_MS',
  'whyDenied.maxQueries': 'WHY_DENIED_MAX_QUERIES',
};

export type EnvOptions = {
  /** The schemas to expose: the one thing the environment does not say. */
  schemas: string[];
  /** Checks of your own variables, reported with the API's (all problems at once). */
  check?: (options: BallastOptions, env: NodeJS.ProcessEnv) => string[];
};

/**
 * The options the environment describes (README "Configuration"), for makeBallastPreset, createBallast or
 * startApi. Throws ConfigError listing every problem: a process should print it and exit 2.
 */
export function apiConfigFromEnv(env: NodeJS.ProcessEnv, opts: EnvOptions): BallastOptions {
  const errors: string[] = [];
  const raw = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const number = (name: string, range: RangeName, whole = true): number | undefined => {
    const v = raw(name);
    if (v === undefined) return undefined;
    const [min, max] = RANGES[range];
    const n = Number(v);
    if (!(whole ? Number.isInteger(n) : Number.isFinite(n)) || n < min || n > max) {
      errors.push(`${name} must be a ${whole ? 'whole number' : 'number'} from ${min} to ${max}, got "${v}"`);
      return undefined;
    }
    return n;
  };
  const bool = (name: string, fallback: boolean): boolean => {
    const v = raw(name);
    if (v === undefined) return fallback;
    if (['on', 'true', '1', 'yes'].includes(v.toLowerCase())) return true;
    if (['off', 'false', '0', 'no'].includes(v.toLowerCase())) return false;
    errors.push(`${name} must be on or off, got "${v}"`);
    return fallback;
  };
  const rateLimit = (name: string): RateLimit | undefined => {
    const v = raw(name);
    if (v === undefined) return undefined;
    if (v.toLowerCase() === 'off') return null;
    const m = /^(\d+)\s*:\s*(\d+(?:\.\d+)?)$/.exec(v);
    const capacity = m ? Number(m[1]) : NaN;
    const refillPerSecond = m ? Number(m[2]) : NaN;
    if (!m || capacity < 1 || capacity > 1e9 || !(refillPerSecond > 0) || refillPerSecond > 1e9) {
      errors.push(`${name} must be "<capacity>:<refill per second>" (e.g. "300:5", capacity ≥ 1, refill > 0) or "off", got "${v}"`);
      return undefined;
    }
    return { capacity, refillPerSecond };
  };
  const httpUrl = (name: string): void => {
    const v = raw(name);
    if (v === undefined) return;
    try {
      const u = new URL(v);
      if (u.protocol === 'http:' || u.protocol === 'https:') return;
    } catch { /* reported below */ }
    errors.push(`${name} must be an http:// or https:// URL, got "${v}"`);
  };
  const list = (name: string): string[] => (raw(name) ?? '').split(',').map((s) => s.trim()).filter(Boolean);

  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) errors.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  const graphileEnv = env.GRAPHILE_ENV || 'production';
  if (!['development', 'production', 'test'].includes(graphileEnv)) {
    errors.push(`GRAPHILE_ENV must be development, production or test, got "${graphileEnv}"`);
  }
  const development = graphileEnv === 'development';

  const requiredMutations = list('IDEMPOTENCY_REQUIRED_MUTATIONS');
  const badNames = requiredMutations.filter((n) => !GRAPHQL_NAME.test(n));
  if (badNames.length) {
    errors.push(`IDEMPOTENCY_REQUIRED_MUTATIONS must be a comma-separated list of GraphQL mutation names (e.g. createFund,updateFund), got ${badNames.map((n) => `"${n}"`).join(', ')}`);
  }

  let connectionString: string | undefined;
  try {
    connectionString = authenticatorUrlFromEnv(env);
  } catch (e) {
    errors.push((e as Error).message);
  }

  // JWT_ROLE_MAP's syntax here; the roles themselves are checked with the other options
  let roleMap: Partial<Record<AppRole, string>> | undefined;
  const roleMapText = raw('JWT_ROLE_MAP');
  if (roleMapText !== undefined) {
    roleMap = {};
    for (const entry of roleMapText.split(',').map((e) => e.trim()).filter(Boolean)) {
      const m = /^([^=\s]+)\s*=\s*(\S+)$/.exec(entry);
      const key = m?.[1] as AppRole | undefined;
      if (!m || !key || !APP_ROLES.includes(key)) {
        errors.push(`JWT_ROLE_MAP must be "<role claim>=<database role>" pairs for member and/or admin, e.g. "member=authenticated,admin=ballast_admin"; got "${entry}"`);
      } else if (roleMap[key] !== undefined) {
        errors.push('JWT_ROLE_MAP maps ' + key + ' twice');
      } else {
        roleMap[key] = m[2];
      }
    }
    if (Object.keys(roleMap).length === 0) {
      if (!errors.some((e) => e.startsWith('JWT_ROLE_MAP'))) errors.push('JWT_ROLE_MAP must map at least one of member and admin to a database role');
      roleMap = undefined;
    }
  }
  const secret = raw('JWT_SECRET');
  const publicKeyFile = raw('JWT_PUBLIC_KEY_FILE');
  const jwksFile = raw('JWT_JWKS_FILE');
  const jwksUrl = raw('JWT_JWKS_URL');
  const noKey = secret === undefined && publicKeyFile === undefined && jwksFile === undefined && jwksUrl === undefined;
  const algorithms = raw('JWT_ALGORITHMS') === undefined ? undefined : list('JWT_ALGORITHMS');
  const telemetry = telemetrySettingsFromEnv(env, 'ballast-api', errors);

  const rateQuery = rateLimit('RATE_LIMIT_QUERY');
  const rateMutation = rateLimit('RATE_LIMIT_MUTATION');
  // The worker's variables (worker/tasks/report_error.ts), checked here too so that one bad deploy fails both processes.
  httpUrl('ERROR_REPORT_URL');
  number('ERROR_REPORT_TIMEOUT_MS', 'errorReportTimeoutMs');

  const options: BallastOptions = {
    schemas: opts.schemas,
    connectionString,
    development,
    host: env.HOST || '127.0.0.1',
    port: number('PORT', 'port'),
    logLevel: LOG_LEVELS.includes(logLevel) ? logLevel : 'info',
    database: {
      poolMax: number('DB_POOL_MAX', 'poolMax'),
      connectTimeoutMs: number('DB_CONNECT_TIMEOUT_MS', 'connectTimeoutMs'),
      statementTimeoutMs: number('DB_STATEMENT_TIMEOUT_MS', 'statementTimeoutMs'),
      lockTimeoutMs: number('DB_LOCK_TIMEOUT_MS', 'lockTimeoutMs'),
      idleInTransactionTimeoutMs: number('DB_IDLE_IN_TRANSACTION_TIMEOUT_MS', 'idleInTransactionTimeoutMs'),
      poolIdleTimeoutMs: number('DB_POOL_IDLE_TIMEOUT_MS', 'poolIdleTimeoutMs'),
      preparedStatements: bool('DB_PREPARED_STATEMENTS', true), // off behind PgBouncer in transaction mode
    },
    jwt: {
      // In development without a key: the published development secret, so dev tools can mint tokens.
      secret: noKey && development ? DEVELOPMENT_JWT_SECRET : secret,
      publicKeyFile,
      jwksFile,
      jwksUrl,
      jwksCooldownS: number('JWT_JWKS_COOLDOWN_S', 'jwksCooldownS'),
      jwksCacheMaxAgeS: number('JWT_JWKS_CACHE_MAX_AGE_S', 'jwksCacheMaxAgeS'),
      jwksTimeoutMs: number('JWT_JWKS_TIMEOUT_MS', 'jwksTimeoutMs'),
      algorithms,
      issuer: raw('JWT_ISSUER') ?? null,
      audience: raw('JWT_AUDIENCE') ?? null,
      clockToleranceS: number('JWT_CLOCK_TOLERANCE_S', 'clockToleranceS'),
      orgClaim: raw('JWT_ORG_CLAIM'),
      roleClaim: raw('JWT_ROLE_CLAIM'),
      roleMap,
      anonymousRole: raw('DB_ANONYMOUS_ROLE'),
    },
    limits: {
      maxDepth: number('GRAPHQL_MAX_DEPTH', 'maxDepth'),
      maxCost: number('GRAPHQL_MAX_COST', 'maxCost'),
      defaultListSize: number('GRAPHQL_DEFAULT_LIST_SIZE', 'defaultListSize'),
      defaultPageSize: number('GRAPHQL_DEFAULT_PAGE_SIZE', 'defaultPageSize'),
      maxPageSize: number('GRAPHQL_MAX_PAGE_SIZE', 'maxPageSize'),
      introspection: bool('GRAPHQL_INTROSPECTION', true),
    },
    bodyLimitBytes: number('BODY_LIMIT_BYTES', 'bodyLimitBytes'),
    logging: { probeSampleRate: number('PROBE_LOG_SAMPLE_RATE', 'probeSampleRate', false) },
    metrics: {
      maxRoutes: number('METRICS_MAX_ROUTES', 'maxRoutes'),
      maxOperations: number('METRICS_MAX_OPERATIONS', 'maxOperations'),
      dbCacheMs: number('METRICS_DB_CACHE_MS', 'dbCacheMs'),
    },
    tracing: bool('REQUEST_TRACING', true) && {
      flushMs: number('TRACE_FLUSH_MS', 'flushMs'),
      batchRows: number('TRACE_BATCH_ROWS', 'batchRows'),
      bufferMax: number('TRACE_BUFFER_MAX', 'bufferMax'),
      sampleRate: number('REQUEST_TRACING_SAMPLE', 'sampleRate', false),
      slowMs: number('REQUEST_TRACING_SLOW_MS', 'slowMs'),
    },
    telemetry: telemetry ?? false,
    errorReports: bool('ERROR_REPORTING', true),
    health: { readyCacheMs: number('HEALTH_READY_CACHE_MS', 'readyCacheMs') },
    whyDenied: { maxQueries: number('WHY_DENIED_MAX_QUERIES', 'whyDeniedMaxQueries') },
    shutdown: { graceMs: number('SHUTDOWN_GRACE_MS', 'graceMs') },
    cors: { origins: list('CORS_ORIGINS') },
    allowedHosts: raw('ALLOWED_HOSTS') === undefined ? undefined : list('ALLOWED_HOSTS'),
    rateLimit: { query: rateQuery, mutation: rateMutation, trustProxyHops: number('TRUST_PROXY_HOPS', 'trustProxyHops'), trustedProxies: list('TRUSTED_PROXIES') },
    idempotency: {
      requiredMutations: requiredMutations.filter((n) => GRAPHQL_NAME.test(n)),
      leaseSeconds: number('IDEMPOTENCY_LEASE_SECONDS', 'leaseSeconds'),
      ttlSeconds: number('IDEMPOTENCY_TTL_SECONDS', 'ttlSeconds'),
      lockWaitMs: number('IDEMPOTENCY_LOCK_WAIT_MS', 'lockWaitMs'),
    },
  };
  // The options' own checks (ranges, secret length, claim and role names, key files, origins), named by variable.
  const more: string[] = [];
  resolveInto(options, ENV_LABELS, more);
  // A missing connection string was reported above, saying which variables give one.
  errors.push(...more.filter((e) => connectionString !== undefined || !e.startsWith(`${ENV_LABELS.connectionString} is not set`)));
  if (opts.check) errors.push(...opts.check(options, env));
  if (errors.length > 0) throw new ConfigError(errors);
  return options;
}

/**
 * How the API connects: AUTH_DATABASE_URL, else DATABASE_URL with the user ballast_authenticator and its
 * password BALLAST_AUTHENTICATOR_PASSWORD (no default: a published password must never reach a real server).
 */
export function authenticatorUrlFromEnv(env: NodeJS.ProcessEnv): string {
  if (env.AUTH_DATABASE_URL) {
    checkUrl('AUTH_DATABASE_URL', env.AUTH_DATABASE_URL);
    return env.AUTH_DATABASE_URL;
  }
  const base = env.DATABASE_URL;
  if (!base) {
    throw new Error(`AUTH_DATABASE_URL is not set: give the API's connection string (as ${KIT_ROLES.authenticator}, never a superuser), or DATABASE_URL and BALLAST_AUTHENTICATOR_PASSWORD`);
  }
  const u = checkUrl('DATABASE_URL', base);
  if (!env.BALLAST_AUTHENTICATOR_PASSWORD) {
    throw new Error(`BALLAST_AUTHENTICATOR_PASSWORD is not set: with DATABASE_URL the API connects as ${KIT_ROLES.authenticator} and needs its password (or give AUTH_DATABASE_URL)`);
  }
  u.username = encodeURIComponent(KIT_ROLES.authenticator);
  u.password = encodeURIComponent(env.BALLAST_AUTHENTICATOR_PASSWORD);
  return u.toString();
}

function checkUrl(name: string, url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${name} must be a postgres:// URL, got something else (${url.length} characters)`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new Error(`${name} must be a postgres:// URL, got a ${u.protocol} URL`);
  if (!u.pathname.replace(/^\//, '')) throw new Error(`${name} must name a database (postgres://user:password@host:port/database)`);
  return u;
}
