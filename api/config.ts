// The API's options: what a user passes to makeBallastPreset / createBallast / createServer
// (BallastOptions, every field but `schemas` optional, defaults below), and the resolved configuration
// every module reads (ApiConfig). resolveApiConfig() checks the options as a whole — ranges, secrets'
// minimum length, claim and role names, key files readable and parseable, CORS origins — and reports
// every problem at once (ConfigError), so a process fails fast with one message. api/env.ts builds
// the options from environment variables and names those variables in its messages.
import fs from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import { cidrProblem } from './client_address.ts';
import { hostProblem, LOOPBACK_HOSTS } from './allowed_hosts.ts';
import { originProblem } from './cors.ts';
import { KIT_ROLES } from '../src/constants.ts';
import type { NodeMiddleware } from './middleware/node.ts';
import type { TelemetrySettings } from './telemetry.ts';

export type RateLimit = { capacity: number; refillPerSecond: number } | null; // null = off
/** The application roles a token's role claim may name (the database's parse_claims accepts these two). */
export type AppRole = 'member' | 'admin';
export const APP_ROLES: readonly AppRole[] = ['member', 'admin'];
export type OperationClass = 'query' | 'mutation';

export type JwtKey =
  | { kind: 'hs256'; secret: string; development: boolean }
  | { kind: 'pem'; key: KeyObject; file: string | null }
  | { kind: 'jwks'; jwks: { keys: Record<string, unknown>[] }; file: string | null }
  | { kind: 'jwks-url'; url: URL; cooldownMs: number; cacheMaxAgeMs: number; timeoutMs: number }
  | { kind: 'none' };

/** Signing algorithms a token may use: HMAC ones only with a secret, never "none". */
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];
/** What identity providers sign with (Auth0, Clerk, Cognito, Entra, Keycloak): the default for a JWKS. */
export const DEFAULT_JWKS_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

/** JWT verification: at most one key source; without one every token is refused (401) and requests are anonymous. */
export type JwtOptions = {
  /** HS256 secret, at least JWT_SECRET_MIN_LENGTH characters. */
  secret?: string;
  /** A public key (RSA, EC P-256/384/521 or Ed25519; PEM text or a KeyObject), or a file holding it. */
  publicKey?: string | KeyObject;
  publicKeyFile?: string;
  /** A JWKS ({"keys": [...]}, the token's kid picks the key), or a file holding it. */
  jwks?: { keys: Record<string, unknown>[] };
  jwksFile?: string;
  /**
   * Your identity provider's JWKS URL (https, or http on a loopback address), fetched and cached: a token
   * with an unknown kid refetches it (at most once per jwksCooldownS), the set is refetched when older
   * than jwksCacheMaxAgeS, and a failed fetch keeps the keys last fetched.
   */
  jwksUrl?: string;
  jwksCooldownS?: number; // 30
  jwksCacheMaxAgeS?: number; // 600
  jwksTimeoutMs?: number; // 5000
  /**
   * The algorithms accepted. Default: HS256 with a secret; RS256, ES256 and EdDSA with a JWKS; the one
   * of the key's type with a public key. HS* only with a secret, never "none".
   */
  algorithms?: string[];
  /** When set, tokens must carry this iss / aud. */
  issuer?: string | null;
  audience?: string | null;
  /** Clock skew allowed on exp/nbf, in seconds. Default 5. */
  clockToleranceS?: number;
  /** The top-level claim holding the organisation's uuid; the database setting org_claim must name the same. Default 'org_id'. */
  orgClaim?: string;
  /** The top-level claim holding member or admin; the database setting role_claim must agree. Default 'role'. */
  roleClaim?: string;
  /** The database role a token becomes, by its role claim. Default { member: 'ballast_member', admin: 'ballast_admin' }. */
  roleMap?: Partial<Record<AppRole, string>>;
  /** The database role of a request without a token. Default 'ballast_anonymous'. */
  anonymousRole?: string;
};

/** Options of `ballast/postgraphile`. Every piece but `schemas` has a default; `false` switches a piece off. */
export type BallastOptions = {
  /** The PostgreSQL schemas PostGraphile exposes, e.g. ['app_public']. Required. */
  schemas: string[];
  /** The authenticator's pool (yours: ballast never ends it), or a connection string for one ballast makes and ends. */
  pool?: pg.Pool;
  connectionString?: string;
  /**
   * The pool settings apply to the pool ballast makes from connectionString; the three timeouts apply to
   * every request's transaction (set_config(…, true)), whichever pool it runs on.
   */
  database?: {
    poolMax?: number; // 10
    connectTimeoutMs?: number; // 3000: a request never waits longer for a connection (then 503)
    statementTimeoutMs?: number; // 15000 (0 = the role's default): a request that hits it gets 504
    lockTimeoutMs?: number; // 5000 (0 = the role's default)
    idleInTransactionTimeoutMs?: number; // 30000 (0 = the role's default)
    poolIdleTimeoutMs?: number; // 30000
    preparedStatements?: boolean; // true; false behind a transaction pooler (PgBouncer 1.18): api/pool.ts
  };
  /** Development mode: Ruru at `/`, the development JWT secret allowed. Default false. */
  development?: boolean;
  /** createServer / startApi: listen address and port. Defaults 127.0.0.1 and 5678 (0: any free port). */
  host?: string;
  port?: number;
  /** A pino logger of yours, or the level of the one ballast makes (default 'info'). */
  logger?: Logger;
  logLevel?: string;
  /** JWT → role + claims (request.jwt.claims). false: no verification, every request runs as the anonymous role. */
  jwt?: JwtOptions | false;
  /** "Why denied" hints on 42501 errors; at most maxQueries explain_access round trips per request (default 3). Default on. */
  whyDenied?: boolean | { maxQueries?: number };
  /**
   * Depth and cost limits of GraphQL documents (cost per request, with the variables' values). Defaults 12, 50000, 100.
   * A connection or list without first/last gets first: defaultPageSize (default 100); a first/last over maxPageSize
   * (default 1000) is refused. introspection: false refuses __schema and __type (default true).
   */
  limits?: { maxDepth?: number; maxCost?: number; defaultListSize?: number; defaultPageSize?: number; maxPageSize?: number; introspection?: boolean } | false;
  /** Largest GraphQL request body (413 above). Default 100000. */
  bodyLimitBytes?: number;
  /** Accept and echo X-Request-Id (ids are generated for logs and request.id either way). Default on. */
  requestId?: boolean;
  /** One log line per request (pino-http). Probes are sampled: probeSampleRate, default 0.01. */
  logging?: { probeSampleRate?: number } | false;
  /** GET /metrics (Prometheus). Defaults 50 routes, 100 operation names, database gauges cached 5000 ms. */
  metrics?: { maxRoutes?: number; maxOperations?: number; dbCacheMs?: number } | false;
  /**
   * One row per request in ballast.performance_metrics, written in batches. Defaults 1000 ms, 500 rows, 20000 buffered.
   * sampleRate (0..1, default 1): the share of requests whose row is written, chosen by trace id; 5xx
   * responses and requests of at least slowMs (default 1000) always are.
   */
  tracing?: { flushMs?: number; batchRows?: number; bufferMax?: number; sampleRate?: number; slowMs?: number } | false;
  /**
   * OpenTelemetry spans (HTTP request, GraphQL operation, database transactions) exported over OTLP/HTTP
   * JSON to tracesUrl (…/v1/traces); apiConfigFromEnv reads OTEL_EXPORTER_OTLP_ENDPOINT. Default off.
   */
  telemetry?: TelemetrySettings | false;
  /** A 5xx queues a report_error job for ballast's worker. Default on. */
  errorReports?: boolean;
  /** GET /health/live and /health/ready; readiness asks the database at most once per readyCacheMs (default 1000; 0 = every probe). Default on. */
  health?: boolean | { readyCacheMs?: number };
  /** While shutting down, new requests get 503 and admitted ones may finish for graceMs (default 10000). */
  shutdown?: { graceMs?: number } | false;
  /**
   * The host names (or IPs) this server answers for; any other Host header gets 421 (DNS rebinding). Health
   * and /metrics are exempt. Default: the loopback names (localhost, 127.0.0.1, ::1): list your API's public
   * names in production. ['*'] serves any Host (no check; the same-origin CORS exemption then trusts any Host).
   */
  allowedHosts?: string[];
  /** The CORS allowlist (exact origins); any other Origin gets 403. false: no CORS handling. Default []. */
  cors?: { origins?: string[] } | false;
  /** While the database is unreachable, answer 503 at once. Default on. */
  dbGuard?: boolean;
  /**
   * Token buckets per subject in PostgreSQL. Defaults query 300 burst / 10 per s, mutation 60 / 1, no trusted proxies.
   * trustProxyHops > 0 reads the client's address from X-Forwarded-For, and only from a peer in trustedProxies
   * (addresses or CIDRs, e.g. ['10.0.0.0/8']; required then).
   */
  rateLimit?: { query?: RateLimit; mutation?: RateLimit; trustProxyHops?: number; trustedProxies?: string[] } | false;
  /**
   * Idempotency-Key on mutations. Defaults: no mutation requires a key, lease 30 s, results kept 86400 s, a
   * duplicate waits at most 1000 ms for the request holding its key (lockWaitMs), then gets 409.
   */
  idempotency?: { requiredMutations?: string[]; leaseSeconds?: number; ttlSeconds?: number; lockWaitMs?: number } | false;
  /** Handlers of yours, (req, res, next), run after CORS and before the GraphQL body is read (pages, routes). */
  middlewares?: NodeMiddleware[];
};

/** The resolved configuration: every default applied, every value checked. */
export type ApiConfig = {
  schemas: string[];
  /** The user's pool, when given (never ended by ballast); else authUrl and the pool settings below. */
  pool: pg.Pool | null;
  authUrl: string;
  host: string;
  port: number;
  development: boolean;
  logLevel: string;
  logger: Logger | null;
  // pool (api/pool.ts)
  poolMax: number;
  dbConnectTimeoutMs: number;
  dbStatementTimeoutMs: number;
  dbLockTimeoutMs: number;
  dbIdleInTransactionTimeoutMs: number;
  dbPoolIdleTimeoutMs: number;
  /** Named (server-side prepared) statements; off behind a transaction pooler such as PgBouncer 1.18 (api/pool.ts). */
  dbPreparedStatements: boolean;
  // idempotency (api/middleware/idempotency.ts)
  idempotency: boolean;
  /** Mutations (top-level field names) that must carry an Idempotency-Key header; without one: 400. */
  idempotencyRequiredMutations: string[];
  /** How long a request holds its idempotency key before another request may take it over. */
  idempotencyLeaseSeconds: number;
  /** How long a stored result is replayed; after that the key behaves as absent. */
  idempotencyTtlSeconds: number;
  /** How long a duplicate waits for the transaction holding its key (lock_timeout of the claim) before it gets 409. */
  idempotencyLockWaitMs: number;
  // shutdown (api/server.ts)
  shutdownGuard: boolean;
  shutdownGraceMs: number;
  // CORS (api/middleware/cors.ts)
  cors: boolean;
  /** Host names served (lowercase); null: any ('*'). The same-origin CORS exemption applies only to these. */
  allowedHosts: string[] | null;
  corsOrigins: string[];
  // request body and GraphQL limits (api/middleware/body.ts, api/graphql_limits.ts)
  bodyLimitBytes: number;
  graphqlLimits: boolean;
  graphqlMaxDepth: number;
  graphqlMaxCost: number;
  graphqlDefaultListSize: number;
  /** first: this on a connection or list asked without first/last (PostGraphile has no default page size). */
  graphqlDefaultPageSize: number;
  /** A first/last above this is refused (PAGE_TOO_LARGE). */
  graphqlMaxPageSize: number;
  /** false: __schema and __type are refused (INTROSPECTION_DISABLED). */
  graphqlIntrospection: boolean;
  whyDenied: boolean;
  /** At most this many hint queries (explain_access) per request; further denials get an unexplained hint. */
  whyDeniedMaxQueries: number;
  // JWT (api/jwt.ts)
  jwtEnabled: boolean;
  jwt: JwtKey;
  jwtIssuer: string | null;
  jwtAudience: string | null;
  jwtClockToleranceS: number;
  /** The top-level claim holding the organisation's uuid; the database's setting org_claim must name the same claim. */
  jwtOrgClaim: string;
  /** The top-level claim holding the application role (member or admin); the database's setting role_claim must agree. */
  jwtRoleClaim: string;
  /** The database role a token becomes, by its role claim; a value not listed here is refused with 401. */
  jwtRoleMap: Partial<Record<AppRole, string>>;
  /** The database role of a request without a token. */
  anonymousRole: string;
  // rate limiting (api/rate_limit.ts)
  rateLimits: Record<OperationClass, RateLimit>;
  trustProxyHops: number;
  /** The proxies' addresses or CIDRs: X-Forwarded-For is read only from these peers (api/client_address.ts). */
  trustedProxies: string[];
  // request ids, logging, health, database guard (api/middleware/)
  requestIdHeader: boolean;
  logging: boolean;
  probeLogSampleRate: number;
  health: boolean;
  /** /health/ready reuses the database's verdict for this long (probes must not become a query storm). */
  healthReadyCacheMs: number;
  dbGuard: boolean;
  // metrics (api/metrics.ts, api/db_gauges.ts)
  metrics: boolean;
  metricsMaxRoutes: number;
  metricsMaxOperations: number;
  metricsDbCacheMs: number;
  // request tracing (api/tracing.ts)
  tracing: boolean;
  traceFlushMs: number;
  traceBatchRows: number;
  traceBufferMax: number;
  /** The share (0..1) of requests whose row is written, by trace id; 5xx and slow requests always are. */
  traceSampleRate: number;
  /** A request at least this slow is always written. */
  traceSlowMs: number;
  /** OpenTelemetry export (api/telemetry.ts); null: off, nothing of the SDK is loaded. */
  telemetry: TelemetrySettings | null;
  /** The algorithms a token may be signed with (api/jwt.ts). */
  jwtAlgorithms: string[];
  // error reporting (api/error_reports.ts)
  errorReporting: boolean;
  middlewares: NodeMiddleware[];
};

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const JWT_SECRET_MIN_LENGTH = 32;
/** Only in development (GRAPHILE_ENV=development without JWT_SECRET): a known secret so dev tools can mint tokens. */
export const DEVELOPMENT_JWT_SECRET = 'ballast-development-only-jwt-secret-do-not-use-in-production';
/** Claims whose meaning RFC 7519 fixes: never the organisation or role claim. */
const REGISTERED_CLAIMS = ['sub', 'exp', 'iat', 'nbf', 'iss', 'aud', 'jti'];
/** Roles a token must never become: the example's owner, the authenticator itself, the worker's login role, the usual superuser. */
const FORBIDDEN_VISITOR_ROLES: string[] = ['ballast_owner', KIT_ROLES.authenticator, KIT_ROLES.worker, 'postgres'];
const ROLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
export const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;

/** Numeric options: [min, max, default]. api/env.ts checks the variables against the same ranges. */
export const RANGES = {
  port: [0, 65535, 5678],
  poolMax: [1, 1000, 10],
  connectTimeoutMs: [100, 120_000, 3000],
  statementTimeoutMs: [0, 3_600_000, 15_000],
  lockTimeoutMs: [0, 3_600_000, 5000],
  idleInTransactionTimeoutMs: [0, 3_600_000, 30_000],
  poolIdleTimeoutMs: [1000, 3_600_000, 30_000],
  leaseSeconds: [1, 3600, 30],
  ttlSeconds: [60, 31_536_000, 86_400],
  lockWaitMs: [1, 60_000, 1000],
  graceMs: [0, 600_000, 10_000],
  bodyLimitBytes: [1000, 50_000_000, 100_000],
  maxDepth: [1, 1000, 12],
  maxCost: [1, 1_000_000_000, 50_000],
  defaultListSize: [1, 1_000_000, 100],
  defaultPageSize: [1, 1_000_000, 100],
  maxPageSize: [1, 1_000_000, 1000],
  clockToleranceS: [0, 3600, 5],
  trustProxyHops: [0, 10, 0],
  probeSampleRate: [0, 1, 0.01],
  maxRoutes: [1, 10_000, 50],
  maxOperations: [1, 10_000, 100],
  dbCacheMs: [0, 600_000, 5000],
  flushMs: [10, 600_000, 1000],
  batchRows: [1, 10_000, 500],
  bufferMax: [1, 10_000_000, 20_000],
  errorReportTimeoutMs: [100, 120_000, 5000],
  readyCacheMs: [0, 60_000, 1000],
  whyDeniedMaxQueries: [0, 100, 3],
  sampleRate: [0, 1, 1],
  slowMs: [0, 3_600_000, 1000],
  jwksCooldownS: [0, 3600, 30],
  jwksCacheMaxAgeS: [1, 86_400, 600],
  jwksTimeoutMs: [100, 60_000, 5000],
} as const satisfies Record<string, readonly [number, number, number]>;
export type RangeName = keyof typeof RANGES;
/** Whole numbers except these. */
const FRACTIONAL: RangeName[] = ['probeSampleRate', 'sampleRate'];

export const DEFAULT_RATE_LIMITS: Record<OperationClass, RateLimit> = {
  query: { capacity: 300, refillPerSecond: 10 },
  mutation: { capacity: 60, refillPerSecond: 1 },
};
export const DEFAULT_ROLE_MAP: Record<AppRole, string> = { member: 'ballast_member', admin: 'ballast_admin' };

/** Every problem with a configuration, in one error. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/**
 * How a problem names an option: its path (jwt.secret) by default; api/env.ts passes the environment
 * variable's name instead (JWT_SECRET), so a message names what the operator set.
 */
export type Labels = Partial<Record<string, string>>;

/** The resolved configuration of `options`; throws ConfigError listing every problem. */
export function resolveApiConfig(options: BallastOptions, labels: Labels = {}): ApiConfig {
  const errors: string[] = [];
  const config = resolveInto(options, labels, errors);
  if (errors.length > 0) throw new ConfigError(errors);
  return config;
}

/** As resolveApiConfig, but appends the problems to `errors` (api/env.ts reports them with its own). */
export function resolveInto(o: BallastOptions, labels: Labels, errors: string[]): ApiConfig {
  const name = (path: string) => labels[path] ?? path;
  const num = (path: string, range: RangeName, v: number | undefined): number => {
    const [min, max, fallback] = RANGES[range];
    if (v === undefined) return fallback;
    const whole = !FRACTIONAL.includes(range);
    if (typeof v !== 'number' || !Number.isFinite(v) || (whole && !Number.isInteger(v)) || v < min || v > max) {
      errors.push(`${name(path)} must be a ${whole ? 'whole number' : 'number'} from ${min} to ${max}, got "${String(v)}"`);
      return fallback;
    }
    return v;
  };
  const section = <T extends object>(v: T | false | undefined): { on: boolean; value: Partial<T> } =>
    v === false ? { on: false, value: {} } : { on: true, value: v ?? {} };

  if (!Array.isArray(o.schemas) || o.schemas.length === 0 || !o.schemas.every((s) => typeof s === 'string' && s !== '')) {
    errors.push(`${name('schemas')} must list the PostgreSQL schemas to expose, e.g. ['app_public']`);
  }
  if (o.pool && o.connectionString) errors.push(`give ${name('pool')} or ${name('connectionString')}, not both`);
  if (!o.pool && !o.connectionString) {
    errors.push(`${name('connectionString')} is not set: give the authenticator's connection string (ballast_authenticator, never a superuser) or a pool`);
  }
  const logLevel = o.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) errors.push(`${name('logLevel')} must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  const development = o.development ?? false;

  const db = o.database ?? {};
  const limits = section(o.limits);
  const logging = section(o.logging);
  const metrics = section(o.metrics);
  const tracing = section(o.tracing);
  const shutdown = section(o.shutdown);
  const cors = section(o.cors);
  const rate = section(o.rateLimit);
  const idem = section(o.idempotency);
  const health = section(o.health === true ? undefined : o.health);
  const whyDenied = section(o.whyDenied === true ? undefined : o.whyDenied);

  const hostEntries = o.allowedHosts ?? LOOPBACK_HOSTS;
  const anyHost = hostEntries.includes('*');
  if (anyHost && hostEntries.length > 1) errors.push(`${name('allowedHosts')}: "*" (any host) must be alone`);
  if (hostEntries.length === 0) errors.push(`${name('allowedHosts')} must list at least one host name (or "*" for any host)`);
  const allowedHostList: string[] = [];
  for (const entry of anyHost ? [] : hostEntries) {
    const problem = typeof entry === 'string' ? hostProblem(entry) : 'is not a string';
    if (problem) errors.push(`${name('allowedHosts')}: "${String(entry)}" ${problem}`);
    else if (!allowedHostList.includes(entry.toLowerCase().replace(/\.$/, ''))) allowedHostList.push(entry.toLowerCase().replace(/\.$/, ''));
  }

  const defaultPageSize = num('limits.defaultPageSize', 'defaultPageSize', limits.value.defaultPageSize);
  const maxPageSize = num('limits.maxPageSize', 'maxPageSize', limits.value.maxPageSize);
  if (defaultPageSize > maxPageSize) {
    errors.push(`${name('limits.defaultPageSize')} (${defaultPageSize}) must be at most ${name('limits.maxPageSize')} (${maxPageSize})`);
  }

  const corsOrigins: string[] = [];
  for (const origin of cors.value.origins ?? []) {
    const problem = originProblem(origin);
    if (problem) errors.push(`${name('cors.origins')}: "${origin}" ${problem}`);
    else if (!corsOrigins.includes(origin)) corsOrigins.push(origin);
  }

  const required = idem.value.requiredMutations ?? [];
  const badNames = required.filter((n) => !GRAPHQL_NAME.test(n));
  if (badNames.length) errors.push(`${name('idempotency.requiredMutations')} must be GraphQL mutation names (e.g. createFund), got ${badNames.map((n) => `"${n}"`).join(', ')}`);
  const leaseSeconds = num('idempotency.leaseSeconds', 'leaseSeconds', idem.value.leaseSeconds);
  const ttlSeconds = num('idempotency.ttlSeconds', 'ttlSeconds', idem.value.ttlSeconds);
  if (ttlSeconds < leaseSeconds) {
    errors.push(`${name('idempotency.ttlSeconds')} (${ttlSeconds}) must be at least ${name('idempotency.leaseSeconds')} (${leaseSeconds})`);
  }

  const trustProxyHops = num('rateLimit.trustProxyHops', 'trustProxyHops', rate.value.trustProxyHops);
  const trustedProxies: string[] = [];
  for (const entry of rate.value.trustedProxies ?? []) {
    const problem = typeof entry === 'string' ? cidrProblem(entry) : 'is not a string';
    if (problem) errors.push(`${name('rateLimit.trustedProxies')}: "${String(entry)}" ${problem}`);
    else trustedProxies.push(entry.trim());
  }
  if (trustProxyHops > 0 && (rate.value.trustedProxies ?? []).length === 0) {
    errors.push(`${name('rateLimit.trustProxyHops')} is ${trustProxyHops}, so ${name('rateLimit.trustedProxies')} must list your proxies' addresses or CIDRs (e.g. 10.0.0.0/8): X-Forwarded-For from any other peer could be forged`);
  }

  const rateLimits = { ...DEFAULT_RATE_LIMITS };
  for (const cls of ['query', 'mutation'] as const) {
    const v = rate.on ? rate.value[cls] : null;
    if (v === undefined) continue;
    if (v !== null && (typeof v !== 'object' || !(v.capacity >= 1 && v.capacity <= 1e9) || !(v.refillPerSecond > 0 && v.refillPerSecond <= 1e9))) {
      errors.push(`${name(`rateLimit.${cls}`)} must be a capacity ≥ 1 and a refill per second > 0 (e.g. 300:5), or off`);
      continue;
    }
    rateLimits[cls] = v;
  }

  const jwtSection = section(o.jwt);
  const j = jwtSection.value;
  const jwt: JwtKey = jwtSection.on ? resolveJwtKey(j, development, name, errors, num) : { kind: 'none' as const };
  const claimName = (path: string, v: string | undefined, fallback: string): string => {
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || v.length === 0 || v.length > 200 || /[\u0000-\u001f\u007f]/.test(v)) {
      errors.push(`${name(path)} must name a top-level claim of your tokens in 1 to 200 characters without control characters (e.g. https://example.com/${fallback}), got ${JSON.stringify(String(v).slice(0, 40))}${String(v).length > 40 ? '...' : ''}`);
      return fallback;
    }
    if (REGISTERED_CLAIMS.includes(v)) {
      errors.push(`${name(path)} must not be the registered claim "${v}" (${REGISTERED_CLAIMS.join(', ')} mean what RFC 7519 says)`);
      return fallback;
    }
    return v;
  };
  const jwtOrgClaim = claimName('jwt.orgClaim', j.orgClaim, 'org_id');
  const jwtRoleClaim = claimName('jwt.roleClaim', j.roleClaim, 'role');
  if (jwtOrgClaim === jwtRoleClaim) errors.push(`${name('jwt.orgClaim')} and ${name('jwt.roleClaim')} must name different claims, both are "${jwtOrgClaim}"`);
  const roleName = (path: string, v: string): boolean => {
    if (typeof v !== 'string' || !ROLE_NAME.test(v)) {
      errors.push(`${name(path)}: "${v}" is not a database role name (a letter or _, then letters, digits, _ or $; at most 63)`);
      return false;
    }
    if (FORBIDDEN_VISITOR_ROLES.includes(v)) {
      errors.push(`${name(path)}: "${v}" must not serve visitors; use ballast_anonymous, ballast_member, ballast_admin or a role of yours granted one of them`);
      return false;
    }
    return true;
  };
  const jwtRoleMap: Partial<Record<AppRole, string>> = {};
  let roleMapOk = true;
  for (const [key, role] of Object.entries(j.roleMap ?? DEFAULT_ROLE_MAP)) {
    if (!APP_ROLES.includes(key as AppRole)) {
      errors.push(`${name('jwt.roleMap')}: "${key}" is not a role claim value: map member and/or admin`);
      roleMapOk = false;
    } else if (role !== undefined) {
      if (roleName('jwt.roleMap', role)) jwtRoleMap[key as AppRole] = role;
      else roleMapOk = false;
    }
  }
  if (Object.keys(jwtRoleMap).length === 0 && roleMapOk) errors.push(`${name('jwt.roleMap')} must map at least one of member and admin to a database role`);
  const anonymousRole = j.anonymousRole ?? 'ballast_anonymous';
  roleName('jwt.anonymousRole', anonymousRole);
  const jwtAlgorithms = resolveAlgorithms(j, jwt, name, errors);
  const telemetry = o.telemetry ? o.telemetry : null;
  if (telemetry) {
    try {
      const u = new URL(telemetry.tracesUrl);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http');
    } catch {
      errors.push(`${name('telemetry.tracesUrl')} must be the http:// or https:// URL of an OTLP/HTTP traces receiver, got "${String(telemetry.tracesUrl)}"`);
    }
  }

  return {
    schemas: o.schemas,
    pool: o.pool ?? null,
    authUrl: o.connectionString ?? '',
    host: o.host ?? '127.0.0.1',
    port: num('port', 'port', o.port),
    development,
    logLevel,
    logger: o.logger ?? null,
    poolMax: num('database.poolMax', 'poolMax', db.poolMax),
    dbConnectTimeoutMs: num('database.connectTimeoutMs', 'connectTimeoutMs', db.connectTimeoutMs),
    dbStatementTimeoutMs: num('database.statementTimeoutMs', 'statementTimeoutMs', db.statementTimeoutMs),
    dbLockTimeoutMs: num('database.lockTimeoutMs', 'lockTimeoutMs', db.lockTimeoutMs),
    dbIdleInTransactionTimeoutMs: num('database.idleInTransactionTimeoutMs', 'idleInTransactionTimeoutMs', db.idleInTransactionTimeoutMs),
    dbPoolIdleTimeoutMs: num('database.poolIdleTimeoutMs', 'poolIdleTimeoutMs', db.poolIdleTimeoutMs),
    dbPreparedStatements: db.preparedStatements ?? true,
    idempotency: idem.on,
    idempotencyRequiredMutations: required.filter((n) => GRAPHQL_NAME.test(n)),
    idempotencyLeaseSeconds: leaseSeconds,
    idempotencyTtlSeconds: ttlSeconds,
    idempotencyLockWaitMs: num('idempotency.lockWaitMs', 'lockWaitMs', idem.value.lockWaitMs),
    shutdownGuard: shutdown.on,
    shutdownGraceMs: num('shutdown.graceMs', 'graceMs', shutdown.value.graceMs),
    cors: cors.on,
    corsOrigins,
    allowedHosts: anyHost ? null : allowedHostList,
    bodyLimitBytes: num('bodyLimitBytes', 'bodyLimitBytes', o.bodyLimitBytes),
    graphqlLimits: limits.on,
    graphqlMaxDepth: num('limits.maxDepth', 'maxDepth', limits.value.maxDepth),
    graphqlMaxCost: num('limits.maxCost', 'maxCost', limits.value.maxCost),
    graphqlDefaultListSize: num('limits.defaultListSize', 'defaultListSize', limits.value.defaultListSize),
    graphqlDefaultPageSize: defaultPageSize,
    graphqlMaxPageSize: maxPageSize,
    graphqlIntrospection: limits.value.introspection ?? true,
    whyDenied: whyDenied.on,
    whyDeniedMaxQueries: num('whyDenied.maxQueries', 'whyDeniedMaxQueries', whyDenied.value.maxQueries),
    jwtEnabled: jwtSection.on,
    jwt,
    jwtIssuer: j.issuer ?? null,
    jwtAudience: j.audience ?? null,
    jwtClockToleranceS: num('jwt.clockToleranceS', 'clockToleranceS', j.clockToleranceS),
    jwtOrgClaim,
    jwtRoleClaim,
    jwtRoleMap,
    anonymousRole,
    rateLimits: rate.on ? rateLimits : { query: null, mutation: null },
    trustProxyHops,
    trustedProxies,
    requestIdHeader: o.requestId ?? true,
    logging: logging.on,
    probeLogSampleRate: num('logging.probeSampleRate', 'probeSampleRate', logging.value.probeSampleRate),
    health: health.on,
    healthReadyCacheMs: num('health.readyCacheMs', 'readyCacheMs', health.value.readyCacheMs),
    dbGuard: o.dbGuard ?? true,
    metrics: metrics.on,
    metricsMaxRoutes: num('metrics.maxRoutes', 'maxRoutes', metrics.value.maxRoutes),
    metricsMaxOperations: num('metrics.maxOperations', 'maxOperations', metrics.value.maxOperations),
    metricsDbCacheMs: num('metrics.dbCacheMs', 'dbCacheMs', metrics.value.dbCacheMs),
    tracing: tracing.on,
    traceFlushMs: num('tracing.flushMs', 'flushMs', tracing.value.flushMs),
    traceBatchRows: num('tracing.batchRows', 'batchRows', tracing.value.batchRows),
    traceBufferMax: num('tracing.bufferMax', 'bufferMax', tracing.value.bufferMax),
    traceSampleRate: num('tracing.sampleRate', 'sampleRate', tracing.value.sampleRate),
    traceSlowMs: num('tracing.slowMs', 'slowMs', tracing.value.slowMs),
    telemetry: telemetry ? { tracesUrl: telemetry.tracesUrl, serviceName: telemetry.serviceName || 'ballast-api', scheduleDelayMs: telemetry.scheduleDelayMs ?? 5000 } : null,
    jwtAlgorithms,
    errorReporting: o.errorReports ?? true,
    middlewares: o.middlewares ?? [],
  };
}

/** Exactly one key source at most: a secret (HMAC), a PEM public key, a JWKS (given or in a file) or a JWKS URL. */
function resolveJwtKey(j: JwtOptions, development: boolean, name: (path: string) => string, errors: string[], num: (path: string, range: RangeName, v: number | undefined) => number): JwtKey {
  const sources = (['secret', 'publicKey', 'publicKeyFile', 'jwks', 'jwksFile', 'jwksUrl'] as const).filter((k) => j[k] !== undefined && j[k] !== '');
  if (sources.length > 1) {
    errors.push(`set only one of ${[...new Set(['secret', 'publicKeyFile', 'jwksFile', 'jwksUrl', 'publicKey', 'jwks'].map((k) => name(`jwt.${k}`)))].join(', ')}; got ${sources.map((k) => name(`jwt.${k}`)).join(' and ')}`);
    return { kind: 'none' };
  }
  const read = (path: string, file: string): string | null => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (e) {
      errors.push(`${name(path)}: cannot read "${file}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return null;
    }
  };
  switch (sources[0]) {
    case undefined:
      return { kind: 'none' };
    case 'secret': {
      const secret = j.secret!;
      if (secret === DEVELOPMENT_JWT_SECRET && !development) {
        errors.push(`${name('jwt.secret')} is the published development secret: refused outside development`);
        return { kind: 'none' };
      }
      if (secret.length < JWT_SECRET_MIN_LENGTH) {
        errors.push(`${name('jwt.secret')} must be at least ${JWT_SECRET_MIN_LENGTH} characters, got ${secret.length} (e.g. openssl rand -base64 48)`);
        return { kind: 'none' };
      }
      return { kind: 'hs256', secret, development: secret === DEVELOPMENT_JWT_SECRET };
    }
    case 'publicKey':
    case 'publicKeyFile': {
      const path = sources[0] === 'publicKey' ? 'jwt.publicKey' : 'jwt.publicKeyFile';
      const file = j.publicKeyFile ?? null;
      let key: KeyObject;
      try {
        if (typeof j.publicKey === 'object') {
          key = j.publicKey;
        } else {
          const text = file === null ? j.publicKey! : read(path, file);
          if (text === null) return { kind: 'none' };
          key = createPublicKey(text);
        }
      } catch (e) {
        errors.push(`${name(path)}: ${file === null ? 'the key' : `"${file}"`} is not a PEM public key (${(e as Error).message})`);
        return { kind: 'none' };
      }
      if (!['rsa', 'rsa-pss', 'ec', 'ed25519'].includes(key.asymmetricKeyType ?? '')) {
        errors.push(`${name(path)}: ${file === null ? 'the key' : `"${file}"`} holds a ${key.asymmetricKeyType} key; use an RSA, EC (P-256, P-384, P-521) or Ed25519 public key`);
        return { kind: 'none' };
      }
      return { kind: 'pem', key, file };
    }
    case 'jwks':
    case 'jwksFile': {
      const path = sources[0] === 'jwks' ? 'jwt.jwks' : 'jwt.jwksFile';
      const file = j.jwksFile ?? null;
      let jwks: unknown = j.jwks;
      if (file !== null) {
        const text = read(path, file);
        if (text === null) return { kind: 'none' };
        try {
          jwks = JSON.parse(text);
        } catch (e) {
          errors.push(`${name(path)}: "${file}" is not JSON (${(e as Error).message})`);
          return { kind: 'none' };
        }
      }
      const keys = (jwks as { keys?: unknown })?.keys;
      if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => k && typeof k === 'object' && ['RSA', 'EC', 'OKP'].includes((k as { kty?: string }).kty ?? ''))) {
        errors.push(`${name(path)}: ${file === null ? 'the JWKS' : `"${file}"`} must be {"keys": [...]} with at least one key, each RSA, EC or OKP`);
        return { kind: 'none' };
      }
      return { kind: 'jwks', jwks: { keys: keys as Record<string, unknown>[] }, file };
    }
    case 'jwksUrl': {
      const problem = jwksUrlProblem(j.jwksUrl!);
      if (problem) {
        errors.push(`${name('jwt.jwksUrl')} ${problem}, got "${j.jwksUrl}"`);
        return { kind: 'none' };
      }
      return {
        kind: 'jwks-url',
        url: new URL(j.jwksUrl!),
        cooldownMs: num('jwt.jwksCooldownS', 'jwksCooldownS', j.jwksCooldownS) * 1000,
        cacheMaxAgeMs: num('jwt.jwksCacheMaxAgeS', 'jwksCacheMaxAgeS', j.jwksCacheMaxAgeS) * 1000,
        timeoutMs: num('jwt.jwksTimeoutMs', 'jwksTimeoutMs', j.jwksTimeoutMs),
      };
    }
  }
}

/** Keys are fetched over https; plain http only from this machine (a local identity provider, tests). */
function jwksUrlProblem(text: string): string | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return 'must be the https:// URL of your identity provider\'s JWKS (e.g. https://example.auth0.com/.well-known/jwks.json)';
  }
  if (u.protocol === 'https:') return null;
  if (u.protocol === 'http:' && LOOPBACK_HOSTS.includes(u.hostname.replace(/^\[|\]$/g, ''))) return null;
  return 'must be an https:// URL (http:// only on a loopback address: keys fetched in the clear could be replaced)';
}

/** The accepted algorithms: given (checked against the key) or the key's default; HS* only with a secret, never "none". */
function resolveAlgorithms(j: JwtOptions, key: JwtKey, name: (path: string) => string, errors: string[]): string[] {
  const fallback = key.kind === 'hs256' ? ['HS256']
    : key.kind === 'pem' ? [pemAlgorithm(key.key)]
      : key.kind === 'jwks' || key.kind === 'jwks-url' ? DEFAULT_JWKS_ALGORITHMS
        : [];
  if (j.algorithms === undefined) return fallback;
  const given = Array.isArray(j.algorithms) ? j.algorithms : [];
  if (given.length === 0) {
    errors.push(`${name('jwt.algorithms')} must list at least one algorithm (e.g. RS256,ES256,EdDSA)`);
    return fallback;
  }
  const ok: string[] = [];
  for (const alg of given) {
    if (typeof alg !== 'string' || alg.toLowerCase() === 'none') {
      errors.push(`${name('jwt.algorithms')}: "${String(alg)}" is never accepted (unsigned tokens)`);
    } else if (HMAC_ALGORITHMS.includes(alg)) {
      if (key.kind === 'hs256') ok.push(alg);
      else errors.push(`${name('jwt.algorithms')}: ${alg} needs a shared secret (JWT_SECRET); with a public key or JWKS it would let anyone holding the public key sign tokens`);
    } else if (ASYMMETRIC_ALGORITHMS.includes(alg)) {
      if (key.kind === 'hs256') errors.push(`${name('jwt.algorithms')}: ${alg} needs a public key or a JWKS; with a secret use ${HMAC_ALGORITHMS.join(', ')}`);
      else ok.push(alg);
    } else {
      errors.push(`${name('jwt.algorithms')}: "${alg}" is not a JWS algorithm ballast accepts (${[...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS].join(', ')})`);
    }
  }
  return ok.length > 0 ? [...new Set(ok)] : fallback;
}

/** The algorithm of a PEM public key's type. */
function pemAlgorithm(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'ed25519': return 'EdDSA';
    case 'ec': return ({ 'P-384': 'ES384', 'P-521': 'ES512' } as Record<string, string>)[key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'P-384' : key.asymmetricKeyDetails?.namedCurve === 'secp521r1' ? 'P-521' : ''] ?? 'ES256';
    case 'rsa-pss': return 'PS256';
    default: return 'RS256';
  }
}
