// The worker's settings from environment variables, read in one place (every variable is listed in the
// README's configuration table). workerConfigFromEnv() checks them all and throws one error naming every
// bad variable, so a process stops at startup instead of failing job after job.
//
// The connection: graphile-worker LISTENs for new jobs (NOTIFY jobs:insert) on one connection it keeps
// for the life of the runner. A LISTEN belongs to a server session, so the worker needs a direct
// connection or a pooler in session mode (PgBouncer pool_mode=session; Supabase's session pooler, port
// 5432), never transaction pooling (PgBouncer pool_mode=transaction; Supabase's port 6543), where the
// session that LISTENed serves other clients between transactions and the notifications are lost (jobs
// then wait for the next poll). Apps whose DATABASE_URL is a transaction pooler give the worker its own
// WORKER_DATABASE_URL; the API may keep the pooler.
import { WORKER_SCHEMA } from '../src/constants.ts';
import { invalidationConfig, type InvalidationConfig } from './invalidation_config.ts';
import type { WorkerMetricsOptions } from './metrics.ts';
import { telemetrySettingsFromEnv, type TelemetrySettings } from '../api/telemetry.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Where error reports (task ballast_report_error) go: ERROR_REPORT_URL, ERROR_REPORT_TIMEOUT_MS. */
export type ErrorReportConfig = {
  /** POST each report here as JSON; null: the worker log (error level) is the only sink. */
  url: string | null;
  timeoutMs: number;
};

export type WorkerConfig = {
  /** WORKER_DATABASE_URL, else DATABASE_URL: a direct or session-mode connection (see above), as ballast_worker_login. */
  directUrl: string;
  /** WORKER_SCHEMA (default ballast_worker): graphile-worker's schema; the kit's setting worker_schema must name the same. */
  schema: string;
  /** WORKER_CONCURRENCY (default 5): jobs run at once by this process. */
  concurrency: number;
  /** WORKER_POLL_INTERVAL_MS (default 1000): how often to look for jobs when no notification came. */
  pollInterval: number;
  /** LOG_LEVEL (default info). */
  logLevel: (typeof LOG_LEVELS)[number];
  /** INVALIDATION_* (worker/invalidation_config.ts): the cache-invalidation sinks. */
  invalidation: InvalidationConfig;
  /** ERROR_REPORT_URL, ERROR_REPORT_TIMEOUT_MS. */
  errorReports: ErrorReportConfig;
  /** WORKER_METRICS_PORT (unset: no endpoint; 0: a free port), WORKER_METRICS_HOST (default 127.0.0.1): the worker's /metrics. */
  metrics: WorkerMetricsOptions | null;
  /** OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME (default ballast-worker), OTEL_BSP_SCHEDULE_DELAY; null: no spans. */
  telemetry: TelemetrySettings | null;
};

function wholeNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number, problems: string[]): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
    return fallback;
  }
  return n;
}

function errorReportsFrom(env: NodeJS.ProcessEnv, problems: string[]): ErrorReportConfig {
  const url = env.ERROR_REPORT_URL || null;
  if (url !== null && !/^https?:\/\/[^/]/.test(url)) problems.push(`ERROR_REPORT_URL must be an http(s) URL, got "${url}"`);
  return { url, timeoutMs: wholeNumber(env, 'ERROR_REPORT_TIMEOUT_MS', 5000, 1, 600_000, problems) };
}

function metricsFrom(env: NodeJS.ProcessEnv, problems: string[]): WorkerMetricsOptions | null {
  if (env.WORKER_METRICS_PORT === undefined || env.WORKER_METRICS_PORT === '') return null;
  const port = wholeNumber(env, 'WORKER_METRICS_PORT', 0, 0, 65535, problems);
  const host = env.WORKER_METRICS_HOST || '127.0.0.1';
  if (!/^[A-Za-z0-9.:_-]{1,253}$/.test(host)) problems.push(`WORKER_METRICS_HOST must be a host name or address to listen on (e.g. 0.0.0.0), got "${host}"`);
  return { port, host };
}

/** The error-report settings alone (the ballast_report_error task reads them when run() did not give them). */
export function errorReportConfig(env: NodeJS.ProcessEnv = process.env): ErrorReportConfig {
  const problems: string[] = [];
  const cfg = errorReportsFrom(env, problems);
  if (problems.length) throw new Error(problems.join('; '));
  return cfg;
}

/** Reads and checks every variable the worker uses; throws one error listing each bad one and the fix. */
export function workerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const problems: string[] = [];
  const directUrl = env.WORKER_DATABASE_URL || env.DATABASE_URL || '';
  const variable = env.WORKER_DATABASE_URL ? 'WORKER_DATABASE_URL' : 'DATABASE_URL';
  if (!directUrl) {
    problems.push('WORKER_DATABASE_URL (or DATABASE_URL) must be set: a postgres:// URL of a direct or session-mode connection (the worker LISTENs for jobs)');
  } else {
    let u: URL | undefined;
    try { u = new URL(directUrl); } catch { /* reported below */ }
    if (!u || !['postgres:', 'postgresql:'].includes(u.protocol)) problems.push(`${variable} must be a postgres:// URL, got "${u ? u.protocol + '//…' : 'something that is not a URL'}"`);
  }
  const schema = env.WORKER_SCHEMA || WORKER_SCHEMA;
  if (Buffer.byteLength(schema) > 63 || /[\p{Cc}]/u.test(schema)) problems.push(`WORKER_SCHEMA must be a schema name of 1 to 63 bytes, got "${schema}"`);
  const logLevel = (env.LOG_LEVEL || 'info') as WorkerConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  let invalidation: InvalidationConfig | undefined;
  try {
    invalidation = invalidationConfig(env);
  } catch (e) {
    problems.push((e as Error).message);
  }
  const config = {
    directUrl,
    schema,
    concurrency: wholeNumber(env, 'WORKER_CONCURRENCY', 5, 1, 1000, problems),
    pollInterval: wholeNumber(env, 'WORKER_POLL_INTERVAL_MS', 1000, 50, 600_000, problems),
    logLevel,
    invalidation: invalidation!,
    errorReports: errorReportsFrom(env, problems),
    metrics: metricsFrom(env, problems),
    telemetry: telemetrySettingsFromEnv(env, 'ballast-worker', problems),
  };
  if (problems.length) throw new Error(`the worker's environment has ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  return config;
}
