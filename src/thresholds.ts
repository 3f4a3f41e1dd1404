// The limits an operator's alerts and the status screen share: ops/prometheus/alerts.yml is generated
// from them (`ballast alerts`, src/alerts.ts) and `ballast status` / `npm run status` (src/status.ts)
// compare the database's state with them, so an alert fires exactly when its status item reads FAIL
// (test/ops_agreement.test.ts checks both on one database). Each may be overridden by its
// BALLAST_ALERT_* variable; set the same variables when you generate the rules and when you run status.

export type Thresholds = {
  /** an invalidation pending longer than this (seconds) */
  invalidationMaxPendingAgeS: number;
  /** no worker heartbeat for longer than this (seconds); the heartbeat task runs every minute */
  workerMaxHeartbeatAgeS: number;
  /** a view staler than this many times its max_delay */
  matviewStaleFactor: number;
  /** this many failed refreshes of a view in a row */
  matviewFailuresInARow: number;
  /** a cleanup policy this many scheduled runs behind */
  cleanupSchedulesBehind: number;
  /** the 5-minute share of 5xx responses above this */
  apiMaxErrorRatio: number;
  /** the error ratio counts only above this many requests per second (5-minute rate) */
  apiMinRequestRate: number;
  /** p99 latency above this (seconds) */
  apiMaxP99S: number;
};

type Spec = { env: string; default: number; meaning: string; whole?: boolean };

/** Every threshold: its variable, default and meaning (the README's configuration table lists the same). */
export const THRESHOLD_SPECS: Record<keyof Thresholds, Spec> = {
  invalidationMaxPendingAgeS: { env: 'BALLAST_ALERT_INVALIDATION_MAX_PENDING_AGE_S', default: 300, meaning: 'oldest pending cache invalidation older than this (seconds)' },
  workerMaxHeartbeatAgeS: { env: 'BALLAST_ALERT_WORKER_MAX_HEARTBEAT_AGE_S', default: 300, meaning: 'newest worker heartbeat older than this (seconds), or none at all' },
  matviewStaleFactor: { env: 'BALLAST_ALERT_MATVIEW_STALE_FACTOR', default: 2, meaning: 'a view staler than this many times its max_delay' },
  matviewFailuresInARow: { env: 'BALLAST_ALERT_MATVIEW_FAILURES_IN_A_ROW', default: 3, meaning: 'this many failed refreshes of a view in a row', whole: true },
  cleanupSchedulesBehind: { env: 'BALLAST_ALERT_CLEANUP_SCHEDULES_BEHIND', default: 2, meaning: 'a cleanup policy this many scheduled runs behind', whole: true },
  apiMaxErrorRatio: { env: 'BALLAST_ALERT_API_MAX_ERROR_RATIO', default: 0.01, meaning: '5-minute share of 5xx responses above this' },
  apiMinRequestRate: { env: 'BALLAST_ALERT_API_MIN_REQUEST_RATE', default: 0.1, meaning: 'the 5xx ratio counts only above this many requests per second' },
  apiMaxP99S: { env: 'BALLAST_ALERT_API_MAX_P99_S', default: 1, meaning: 'p99 latency of the last 5 minutes above this (seconds)' },
};

export const DEFAULT_THRESHOLDS: Thresholds = Object.fromEntries(
  Object.entries(THRESHOLD_SPECS).map(([k, s]) => [k, s.default])) as Thresholds;

/** The thresholds, each from its BALLAST_ALERT_* variable when set; throws one error naming every bad one. */
export function thresholdsFromEnv(env: NodeJS.ProcessEnv = process.env): Thresholds {
  const out = { ...DEFAULT_THRESHOLDS };
  const problems: string[] = [];
  for (const [key, spec] of Object.entries(THRESHOLD_SPECS) as [keyof Thresholds, Spec][]) {
    const raw = env[spec.env];
    if (raw === undefined || raw === '') continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0 || (spec.whole && !Number.isInteger(n))) {
      problems.push(`${spec.env} must be a non-negative ${spec.whole ? 'whole ' : ''}number (${spec.meaning}), got "${raw}"`);
    } else out[key] = n;
  }
  if (problems.length) throw new Error(problems.join('; '));
  return out;
}
