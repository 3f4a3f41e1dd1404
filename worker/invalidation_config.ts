// Configuration of cache-invalidation delivery (task ballast_deliver_cache_invalidations), from the environment
// (worker/config.ts reads it with the worker's other variables).
// Every variable is listed in the README's configuration table.

export type SinkName = 'http' | 'redis' | 'log';

export type InvalidationConfig = {
  sinks: SinkName[];
  httpUrl?: string;
  httpAuthorization?: string;
  sinkTimeoutMs: number;
  redisUrl: string;
  redisTagPrefix: string;
  batchSize: number;
  parallel: number;
  leaseSeconds: number;
  pollMs: number;
  runSeconds: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  breakerFailures: number;
  breakerCooldownMs: number;
};

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

/** Reads and checks the INVALIDATION_* variables; throws one error that names the variable and the fix. */
export function invalidationConfig(env: NodeJS.ProcessEnv = process.env): InvalidationConfig {
  const sinkList = (env.INVALIDATION_SINKS ?? 'log').split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = sinkList.filter((s) => !['http', 'redis', 'log'].includes(s));
  if (sinkList.length === 0 || unknown.length) {
    throw new Error(`INVALIDATION_SINKS must list one or more of http, redis, log (comma-separated), got "${env.INVALIDATION_SINKS}"`);
  }
  const sinks = [...new Set(sinkList)] as SinkName[];
  const httpUrl = env.INVALIDATION_HTTP_URL || undefined;
  if (sinks.includes('http')) {
    if (!httpUrl) throw new Error('INVALIDATION_SINKS includes http: set INVALIDATION_HTTP_URL to the purge endpoint, e.g. https://cdn.example/purge');
    let u: URL;
    try { u = new URL(httpUrl); } catch { throw new Error(`INVALIDATION_HTTP_URL must be an http(s) URL, got "${httpUrl}"`); }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`INVALIDATION_HTTP_URL must be an http(s) URL, got "${httpUrl}"`);
  }
  const redisUrl = env.INVALIDATION_REDIS_URL || 'redis://127.0.0.1:6379';
  if (sinks.includes('redis') && !/^rediss?:\/\//.test(redisUrl)) {
    throw new Error(`INVALIDATION_REDIS_URL must start with redis:// or rediss://, got "${redisUrl}"`);
  }
  const cfg: InvalidationConfig = {
    sinks,
    httpUrl,
    httpAuthorization: env.INVALIDATION_HTTP_AUTHORIZATION || undefined,
    sinkTimeoutMs: int(env, 'INVALIDATION_SINK_TIMEOUT_MS', 5000, 1, 600_000),
    redisUrl,
    redisTagPrefix: env.INVALIDATION_REDIS_TAG_PREFIX ?? 'tag:',
    batchSize: int(env, 'INVALIDATION_BATCH_SIZE', 1000, 1, 10_000),
    parallel: int(env, 'INVALIDATION_PARALLEL', 2, 1, 16),
    leaseSeconds: int(env, 'INVALIDATION_LEASE_SECONDS', 60, 1, 86_400),
    pollMs: int(env, 'INVALIDATION_POLL_MS', 250, 10, 60_000),
    runSeconds: int(env, 'INVALIDATION_RUN_SECONDS', 60, 1, 3600),
    backoffBaseMs: int(env, 'INVALIDATION_BACKOFF_BASE_MS', 1000, 1, 3_600_000),
    backoffMaxMs: int(env, 'INVALIDATION_BACKOFF_MAX_MS', 600_000, 1, 86_400_000),
    breakerFailures: int(env, 'INVALIDATION_BREAKER_FAILURES', 5, 1, 1000),
    breakerCooldownMs: int(env, 'INVALIDATION_BREAKER_COOLDOWN_MS', 30_000, 0, 3_600_000),
  };
  if (cfg.backoffMaxMs < cfg.backoffBaseMs) {
    throw new Error(`INVALIDATION_BACKOFF_MAX_MS (${cfg.backoffMaxMs}) must be at least INVALIDATION_BACKOFF_BASE_MS (${cfg.backoffBaseMs})`);
  }
  // A lease that ends while a delivery is still allowed to run hands the rows to another worker: double work.
  if (cfg.leaseSeconds * 1000 < 2 * cfg.sinkTimeoutMs) {
    throw new Error(`INVALIDATION_LEASE_SECONDS (${cfg.leaseSeconds}) must be at least twice INVALIDATION_SINK_TIMEOUT_MS (${cfg.sinkTimeoutMs} ms)`);
  }
  return cfg;
}
