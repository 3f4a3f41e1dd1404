// The API's configuration, read from the environment and validated as a whole at startup: every
// variable is checked (type, range, secrets' minimum length, key files readable and parseable), every
// problem is reported at once, then the process stops (fail fast). Defaults are in the README table.
import fs from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { dbConfig } from '../scripts/lib/config.ts';
import { parseOrigins } from './cors.ts';

export type RateLimit = { capacity: number; refillPerSecond: number } | null; // null = off
/** The application roles a token's role claim may name (the database's parse_claims accepts these two). */
export type AppRole = 'member' | 'admin';
export const APP_ROLES: readonly AppRole[] = ['member', 'admin'];
export type OperationClass = 'query' | 'mutation';

export type JwtKey =
  | { kind: 'hs256'; secret: string; development: boolean }
  | { kind: 'rs256-pem'; key: KeyObject; file: string }
  | { kind: 'rs256-jwks'; jwks: { keys: Record<string, unknown>[] }; file: string }
  | { kind: 'none' };

export type ApiConfig = {
  host: string;
  port: number;
  development: boolean;
  logLevel: string;
  authUrl: string;
  ownerUrl: string;
  // pool (api/pool.ts)
  poolMax: number;
  /** Mutations (top-level field names) that must carry an Idempotency-Key header; without one: 400. */
  idempotencyRequiredMutations: string[];
  /** How long a request holds its idempotency key before another request may take it over. */
  idempotencyLeaseSeconds: number;
  /** How long a stored result is replayed; after that the key behaves as absent. */
  idempotencyTtlSeconds: number;
  dbConnectTimeoutMs: number;
  dbStatementTimeoutMs: number;
  dbLockTimeoutMs: number;
  dbIdleInTransactionTimeoutMs: number;
  dbPoolIdleTimeoutMs: number;
  // shutdown (api/server.ts)
  shutdownGraceMs: number;
  // CORS (api/middleware/cors.ts)
  corsOrigins: string[];
  // request body and GraphQL limits (api/middleware/body.ts, api/graphql_limits.ts)
  bodyLimitBytes: number;
  graphqlMaxDepth: number;
  graphqlMaxCost: number;
  graphqlDefaultListSize: number;
  // JWT (api/jwt.ts)
  jwt: JwtKey;
  jwtIssuer: string | null;
  jwtAudience: string | null;
  jwtClockToleranceS: number;
  // JWT claims and the database roles they map to (api/jwt.ts)
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
  // logging (api/middleware/logging.ts)
  probeLogSampleRate: number;
  // metrics (api/metrics.ts, api/db_gauges.ts)
  metricsMaxRoutes: number;
  metricsMaxOperations: number;
  metricsDbCacheMs: number;
  // request tracing (api/tracing.ts)
  tracing: boolean;
  traceFlushMs: number;
  traceBatchRows: number;
  traceBufferMax: number;
  // error reporting (api/error_reports.ts; the worker's report_error task posts to errorReportUrl)
  errorReporting: boolean;
  errorReportUrl: string | null;
  errorReportTimeoutMs: number;
  // admin page (api/middleware/admin.ts)
  adminPage: boolean;
  /** /admin/dev-tokens mints tokens for the example logins: development and tests only. */
  adminDevTokens: boolean;
};

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
export const JWT_SECRET_MIN_LENGTH = 32;
/** Only when GRAPHILE_ENV=development and JWT_SECRET is unset: a known secret so dev tools can mint tokens. */
export const DEVELOPMENT_JWT_SECRET = 'ballast-development-only-jwt-secret-do-not-use-in-production';
/** Claims whose meaning RFC 7519 fixes: never the organisation or role claim. */
const REGISTERED_CLAIMS = ['sub', 'exp', 'iat', 'nbf', 'iss', 'aud', 'jti'];
/** Roles a token must never become: the owner and the authenticator itself (and the usual superuser). */
const FORBIDDEN_VISITOR_ROLES = ['ballast_owner', 'ballast_authenticator', 'postgres'];
const ROLE_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const errors: string[] = [];
  const raw = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const v = raw(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      errors.push(`${name} must be a whole number from ${min} to ${max}, got "${v}"`);
      return fallback;
    }
    return n;
  };
  const num = (name: string, fallback: number, min: number, max: number): number => {
    const v = raw(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) {
      errors.push(`${name} must be a number from ${min} to ${max}, got "${v}"`);
      return fallback;
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
  const rateLimit = (name: string, fallback: RateLimit): RateLimit => {
    const v = raw(name);
    if (v === undefined) return fallback;
    if (v.toLowerCase() === 'off') return null;
    const m = /^(\d+)\s*:\s*(\d+(?:\.\d+)?)$/.exec(v);
    const capacity = m ? Number(m[1]) : NaN;
    const refillPerSecond = m ? Number(m[2]) : NaN;
    if (!m || capacity < 1 || capacity > 1e9 || !(refillPerSecond > 0) || refillPerSecond > 1e9) {
      errors.push(`${name} must be "<capacity>:<refill per second>" (e.g. "300:5", capacity ≥ 1, refill > 0) or "off", got "${v}"`);
      return fallback;
    }
    return { capacity, refillPerSecond };
  };

  const httpUrl = (name: string): string | null => {
    const v = raw(name);
    if (v === undefined) return null;
    try {
      const u = new URL(v);
      if (u.protocol === 'http:' || u.protocol === 'https:') return v;
    } catch { /* reported below */ }
    errors.push(`${name} must be an http:// or https:// URL, got "${v}"`);
    return null;
  };

  const logLevel = env.LOG_LEVEL || 'info';
  if (!LEVELS.includes(logLevel)) errors.push(`LOG_LEVEL must be one of ${LEVELS.join(', ')}, got "${logLevel}"`);
  const graphileEnv = env.GRAPHILE_ENV || 'production';
  if (!['development', 'production', 'test'].includes(graphileEnv)) {
    errors.push(`GRAPHILE_ENV must be development, production or test, got "${graphileEnv}"`);
  }
  const requiredMutations = (env.IDEMPOTENCY_REQUIRED_MUTATIONS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const badNames = requiredMutations.filter((n) => !/^[_A-Za-z][_0-9A-Za-z]*$/.test(n));
  if (badNames.length) {
    errors.push(`IDEMPOTENCY_REQUIRED_MUTATIONS must be a comma-separated list of GraphQL mutation names (e.g. createFund,updateFund), got ${badNames.map((n) => `"${n}"`).join(', ')}`);
  }
  const leaseSeconds = int('IDEMPOTENCY_LEASE_SECONDS', 30, 1, 3600);
  const ttlSeconds = int('IDEMPOTENCY_TTL_SECONDS', 86_400, 60, 31_536_000);
  if (ttlSeconds < leaseSeconds) {
    errors.push(`IDEMPOTENCY_TTL_SECONDS (${ttlSeconds}) must be at least IDEMPOTENCY_LEASE_SECONDS (${leaseSeconds})`);
  }
  const development = graphileEnv === 'development';
  let db = { authUrl: '', ownerUrl: '' };
  try {
    db = dbConfig({}, env);
  } catch (e) {
    errors.push((e as Error).message);
  }

  const cors = parseOrigins(env.CORS_ORIGINS ?? '');
  for (const e of cors.errors) errors.push(`CORS_ORIGINS: ${e}`);

  const jwt = loadJwtKey(env, development, errors);
  const jwtIssuer = raw('JWT_ISSUER') ?? null;
  const jwtAudience = raw('JWT_AUDIENCE') ?? null;

  const claimName = (name: string, fallback: string): string => {
    const v = raw(name);
    if (v === undefined) return fallback;
    if (v.length > 200 || /[\u0000-\u001f\u007f]/.test(v)) {
      errors.push(`${name} must name a top-level claim of your tokens in 1 to 200 characters without control characters (e.g. https://example.com/${fallback}), got ${JSON.stringify(v.slice(0, 40))}${v.length > 40 ? '...' : ''}`);
      return fallback;
    }
    if (REGISTERED_CLAIMS.includes(v)) {
      errors.push(`${name} must not be the registered claim "${v}" (${REGISTERED_CLAIMS.join(', ')} mean what RFC 7519 says)`);
      return fallback;
    }
    return v;
  };
  const jwtOrgClaim = claimName('JWT_ORG_CLAIM', 'org_id');
  const jwtRoleClaim = claimName('JWT_ROLE_CLAIM', 'role');
  if (jwtOrgClaim === jwtRoleClaim) errors.push(`JWT_ORG_CLAIM and JWT_ROLE_CLAIM must name different claims, both are "${jwtOrgClaim}"`);
  const roleName = (name: string, v: string): boolean => {
    if (!ROLE_NAME.test(v)) {
      errors.push(`${name}: "${v}" is not a database role name (a letter or _, then letters, digits, _ or $; at most 63)`);
      return false;
    }
    if (FORBIDDEN_VISITOR_ROLES.includes(v)) {
      errors.push(`${name}: "${v}" must not serve visitors; use ballast_anonymous, ballast_member, ballast_admin or a role of yours granted one of them`);
      return false;
    }
    return true;
  };
  const jwtRoleMap: Partial<Record<AppRole, string>> = {};
  const roleMapText = raw('JWT_ROLE_MAP') ?? 'member=ballast_member,admin=ballast_admin';
  for (const entry of roleMapText.split(',').map((e) => e.trim()).filter(Boolean)) {
    const m = /^([^=\s]+)\s*=\s*(\S+)$/.exec(entry);
    const key = m?.[1] as AppRole | undefined;
    if (!m || !key || !APP_ROLES.includes(key)) {
      errors.push(`JWT_ROLE_MAP must be "<role claim>=<database role>" pairs for member and/or admin, e.g. "member=authenticated,admin=ballast_admin"; got "${entry}"`);
    } else if (jwtRoleMap[key] !== undefined) {
      errors.push(`JWT_ROLE_MAP maps ${key} twice`);
    } else if (roleName('JWT_ROLE_MAP', m[2])) {
      jwtRoleMap[key] = m[2];
    }
  }
  if (Object.keys(jwtRoleMap).length === 0 && !errors.some((e) => e.startsWith('JWT_ROLE_MAP'))) {
    errors.push('JWT_ROLE_MAP must map at least one of member and admin to a database role');
  }
  const anonymousRole = raw('DB_ANONYMOUS_ROLE') ?? 'ballast_anonymous';
  roleName('DB_ANONYMOUS_ROLE', anonymousRole);

  const config: ApiConfig = {
    host: env.HOST || '127.0.0.1',
    port: int('PORT', 5678, 0, 65535),
    development,
    logLevel,
    authUrl: db.authUrl,
    ownerUrl: db.ownerUrl,
    poolMax: int('DB_POOL_MAX', 10, 1, 1000),
    idempotencyRequiredMutations: requiredMutations,
    idempotencyLeaseSeconds: leaseSeconds,
    idempotencyTtlSeconds: ttlSeconds,
    dbConnectTimeoutMs: int('DB_CONNECT_TIMEOUT_MS', 3000, 100, 120_000),
    dbStatementTimeoutMs: int('DB_STATEMENT_TIMEOUT_MS', 15_000, 0, 3_600_000),
    dbLockTimeoutMs: int('DB_LOCK_TIMEOUT_MS', 5000, 0, 3_600_000),
    dbIdleInTransactionTimeoutMs: int('DB_IDLE_IN_TRANSACTION_TIMEOUT_MS', 30_000, 0, 3_600_000),
    dbPoolIdleTimeoutMs: int('DB_POOL_IDLE_TIMEOUT_MS', 30_000, 1000, 3_600_000),
    shutdownGraceMs: int('SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    corsOrigins: cors.origins,
    bodyLimitBytes: int('BODY_LIMIT_BYTES', 100_000, 1000, 50_000_000),
    graphqlMaxDepth: int('GRAPHQL_MAX_DEPTH', 12, 1, 1000),
    graphqlMaxCost: int('GRAPHQL_MAX_COST', 50_000, 1, 1_000_000_000),
    graphqlDefaultListSize: int('GRAPHQL_DEFAULT_LIST_SIZE', 100, 1, 1_000_000),
    jwt,
    jwtIssuer,
    jwtAudience,
    jwtClockToleranceS: int('JWT_CLOCK_TOLERANCE_S', 5, 0, 3600),
    jwtOrgClaim,
    jwtRoleClaim,
    jwtRoleMap,
    anonymousRole,
    rateLimits: {
      query: rateLimit('RATE_LIMIT_QUERY', { capacity: 300, refillPerSecond: 10 }),
      mutation: rateLimit('RATE_LIMIT_MUTATION', { capacity: 60, refillPerSecond: 1 }),
    },
    trustProxyHops: int('TRUST_PROXY_HOPS', 0, 0, 10),
    probeLogSampleRate: num('PROBE_LOG_SAMPLE_RATE', 0.01, 0, 1),
    metricsMaxRoutes: int('METRICS_MAX_ROUTES', 50, 1, 10_000),
    metricsMaxOperations: int('METRICS_MAX_OPERATIONS', 100, 1, 10_000),
    metricsDbCacheMs: int('METRICS_DB_CACHE_MS', 5000, 0, 600_000),
    tracing: bool('REQUEST_TRACING', true),
    traceFlushMs: int('TRACE_FLUSH_MS', 1000, 10, 600_000),
    traceBatchRows: int('TRACE_BATCH_ROWS', 500, 1, 10_000),
    traceBufferMax: int('TRACE_BUFFER_MAX', 20_000, 1, 10_000_000),
    errorReporting: bool('ERROR_REPORTING', true),
    errorReportUrl: httpUrl('ERROR_REPORT_URL'),
    errorReportTimeoutMs: int('ERROR_REPORT_TIMEOUT_MS', 5000, 100, 120_000),
    adminPage: bool('ADMIN_PAGE', true),
    adminDevTokens: bool('ADMIN_DEV_TOKENS', development),
  };
  if (config.adminDevTokens && graphileEnv === 'production') {
    errors.push('ADMIN_DEV_TOKENS=on is refused with GRAPHILE_ENV=production: it hands out admin tokens to anyone who asks');
  }
  if (config.adminDevTokens && jwt.kind !== 'hs256') {
    errors.push(`ADMIN_DEV_TOKENS=on needs an HS256 key (JWT_SECRET, or GRAPHILE_ENV=development without one) to sign with; the JWT key here is ${jwt.kind}`);
  }
  if (errors.length > 0) {
    throw new Error(`invalid configuration (${errors.length} problem${errors.length === 1 ? '' : 's'}):\n  - ${errors.join('\n  - ')}`);
  }
  return config;
}

/** Exactly one key source: JWT_SECRET (HS256), JWT_PUBLIC_KEY_FILE (RS256 PEM) or JWT_JWKS_FILE (RS256 JWKS). */
function loadJwtKey(env: NodeJS.ProcessEnv, development: boolean, errors: string[]): JwtKey {
  const secret = env.JWT_SECRET || undefined;
  const pemFile = env.JWT_PUBLIC_KEY_FILE || undefined;
  const jwksFile = env.JWT_JWKS_FILE || undefined;
  const given = [secret && 'JWT_SECRET', pemFile && 'JWT_PUBLIC_KEY_FILE', jwksFile && 'JWT_JWKS_FILE'].filter(Boolean);
  if (given.length > 1) {
    errors.push(`set only one of JWT_SECRET, JWT_PUBLIC_KEY_FILE, JWT_JWKS_FILE; got ${given.join(' and ')}`);
    return { kind: 'none' };
  }
  if (secret !== undefined) {
    if (secret.length < JWT_SECRET_MIN_LENGTH) {
      errors.push(`JWT_SECRET must be at least ${JWT_SECRET_MIN_LENGTH} characters, got ${secret.length} (e.g. openssl rand -base64 48)`);
      return { kind: 'none' };
    }
    return { kind: 'hs256', secret, development: false };
  }
  const read = (name: string, file: string): string | null => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch (e) {
      errors.push(`${name}: cannot read "${file}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return null;
    }
  };
  if (pemFile !== undefined) {
    const text = read('JWT_PUBLIC_KEY_FILE', pemFile);
    if (text === null) return { kind: 'none' };
    try {
      const key = createPublicKey(text);
      if (key.asymmetricKeyType !== 'rsa') {
        errors.push(`JWT_PUBLIC_KEY_FILE: "${pemFile}" holds a ${key.asymmetricKeyType} key; RS256 needs an RSA public key`);
        return { kind: 'none' };
      }
      return { kind: 'rs256-pem', key, file: pemFile };
    } catch (e) {
      errors.push(`JWT_PUBLIC_KEY_FILE: "${pemFile}" is not a PEM public key (${(e as Error).message})`);
      return { kind: 'none' };
    }
  }
  if (jwksFile !== undefined) {
    const text = read('JWT_JWKS_FILE', jwksFile);
    if (text === null) return { kind: 'none' };
    let jwks: unknown;
    try {
      jwks = JSON.parse(text);
    } catch (e) {
      errors.push(`JWT_JWKS_FILE: "${jwksFile}" is not JSON (${(e as Error).message})`);
      return { kind: 'none' };
    }
    const keys = (jwks as { keys?: unknown })?.keys;
    if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => k && typeof k === 'object' && (k as { kty?: unknown }).kty === 'RSA')) {
      errors.push(`JWT_JWKS_FILE: "${jwksFile}" must be {"keys": [...]} with at least one RSA key`);
      return { kind: 'none' };
    }
    return { kind: 'rs256-jwks', jwks: { keys: keys as Record<string, unknown>[] }, file: jwksFile };
  }
  if (development) return { kind: 'hs256', secret: DEVELOPMENT_JWT_SECRET, development: true };
  return { kind: 'none' };
}
