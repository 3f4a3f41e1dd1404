// ballast's Prometheus alerting rules, generated: `ballast alerts [--api-job J] [--worker-job J]
// [--runbook-url U]` prints them; ops/prometheus/alerts.yml is the output with the defaults (a test keeps it
// so). Every alert selects its series by job (the scrape job of the API, or of the worker), takes its
// limits from src/thresholds.ts (the numbers `ballast status` uses) and links its section of
// docs/RUNBOOK.md. Database gauges are exported by every API replica alike, so their alerts aggregate
// with `max by (job, <the object's labels>)`: one alert per view / policy / task, whatever the number of
// replicas and whatever per-target labels (instance, pod, node) service discovery adds.
import { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.ts';

export type AlertOptions = {
  /** The `job` label of the API's scrape targets (default ballast-api). */
  apiJob: string;
  /** The `job` label of the worker's scrape targets (default ballast-worker). */
  workerJob: string;
  /** Where docs/RUNBOOK.md is served; each alert links `<runbookUrl>#<alert name in lower case>`. */
  runbookUrl: string;
  thresholds: Thresholds;
};

export const DEFAULT_ALERT_OPTIONS: AlertOptions = {
  apiJob: 'ballast-api',
  workerJob: 'ballast-worker',
  runbookUrl: 'docs/RUNBOOK.md',
  thresholds: DEFAULT_THRESHOLDS,
};

export type Alert = {
  alert: string;
  /** What it watches, one line (a comment above the rule). */
  why: string;
  expr: string;
  for?: string;
  severity: 'warning' | 'critical';
  summary: string;
  description: string;
  /**
   * The status item that reads the same condition from the database (src/status.ts), or why there is
   * none: a scrape target's `up` is seen by Prometheus only.
   */
  status: { section: string } | { prometheusOnly: string };
};

/** The job label value must be usable inside a PromQL double-quoted string. */
function checkJob(flag: string, job: string): void {
  if (!/^[^"\\\n]{1,200}$/.test(job)) throw new Error(`${flag} must be a job label value of 1 to 200 characters without quotes, backslashes or newlines, got ${JSON.stringify(job)}`);
}

/** ballast's alerts for these jobs and thresholds. */
export function alerts(o: AlertOptions = DEFAULT_ALERT_OPTIONS): Alert[] {
  checkJob('--api-job', o.apiJob);
  checkJob('--worker-job', o.workerJob);
  const t = o.thresholds;
  const api = `job="${o.apiJob}"`;
  const worker = `job="${o.workerJob}"`;
  // Requests of clients: not Prometheus's scrapes nor the orchestrator's probes (the status screen reads
  // ballast.performance_metrics, which has neither).
  const traffic = `${api}, route!~"/metrics|/health/.*"`;
  return [
    {
      alert: 'BallastApiDown', why: 'An API target Prometheus scrapes does not answer.',
      expr: `up{${api}} == 0`, for: '2m', severity: 'critical',
      summary: 'API target {{ $labels.instance }} is down',
      description: 'Prometheus cannot scrape /metrics of this API instance (job {{ $labels.job }}).',
      status: { prometheusOnly: 'whether a scrape target answers is known to Prometheus only' },
    },
    {
      alert: 'BallastApiAbsent', why: 'No API target at all: the deployment is gone, or the scrape job is misnamed.',
      expr: `absent(up{${api}})`, for: '5m', severity: 'critical',
      summary: `No API target of job ${o.apiJob} is scraped`,
      description: `Prometheus has no target of job ${o.apiJob}: the API is not deployed, or its scrape job has another name (regenerate the rules with ballast alerts --api-job).`,
      status: { prometheusOnly: 'which targets exist is known to Prometheus only' },
    },
    {
      alert: 'BallastWorkerDown', why: 'A worker target Prometheus scrapes does not answer.',
      expr: `up{${worker}} == 0`, for: '2m', severity: 'critical',
      summary: 'Worker target {{ $labels.instance }} is down',
      description: 'Prometheus cannot scrape /metrics of this worker process (job {{ $labels.job }}, WORKER_METRICS_PORT).',
      status: { prometheusOnly: 'whether a scrape target answers is known to Prometheus only; the status screen shows the heartbeats' },
    },
    {
      alert: 'BallastWorkerAbsent', why: 'No worker target at all.',
      expr: `absent(up{${worker}})`, for: '5m', severity: 'critical',
      summary: `No worker target of job ${o.workerJob} is scraped`,
      description: `Prometheus has no target of job ${o.workerJob}: no worker runs, it runs without WORKER_METRICS_PORT, or its scrape job has another name (ballast alerts --worker-job).`,
      status: { prometheusOnly: 'which targets exist is known to Prometheus only; the status screen shows the heartbeats' },
    },
    {
      alert: 'BallastDbMetricsDown', why: 'No API replica can read the database gauges: every alert below is blind.',
      expr: `max by (job) (ballast_db_metrics_up{${api}}) == 0`, for: '5m', severity: 'critical',
      summary: 'The database gauges of job {{ $labels.job }} cannot be read',
      description: 'ballast_db_metrics_up is 0 on every API replica: ballast.metrics_snapshot() fails or the database is unreachable. The alerts on queues, views and cleanup cannot fire meanwhile.',
      status: { prometheusOnly: 'the status screen reads the database directly; when it cannot, it exits with an error instead' },
    },
    {
      alert: 'BallastWorkerHeartbeatStale', why: 'No worker recorded a heartbeat lately (-1: never).',
      expr: `max by (job) (ballast_worker_heartbeat_age_seconds{${api}}) > ${t.workerMaxHeartbeatAgeS}\n  or max by (job) (ballast_worker_heartbeat_age_seconds{${api}}) < 0`,
      for: '2m', severity: 'critical',
      summary: 'No worker heartbeat for {{ $value | humanizeDuration }} (negative: never)',
      description: `The newest row of ballast.worker_heartbeats is older than ${t.workerMaxHeartbeatAgeS}s: no worker runs ballast's jobs (heartbeat, invalidation delivery, error reports).`,
      status: { section: 'worker' },
    },
    {
      alert: 'BallastInvalidationQueueBacklog', why: 'Cache-invalidation tags wait too long: the worker is down, slow or its sink fails.',
      expr: `max by (job) (ballast_cache_invalidation_oldest_pending_seconds{${api}}) > ${t.invalidationMaxPendingAgeS}`, for: '5m', severity: 'warning',
      summary: 'Oldest pending cache invalidation is {{ $value | humanizeDuration }} old',
      description: 'Tags are not being delivered. Check the worker (npm run status) and its sink.',
      status: { section: 'invalidation queue' },
    },
    {
      alert: 'BallastInvalidationDeadLetters', why: 'A tag used up its retries: some cache still serves stale data.',
      expr: `max by (job) (ballast_cache_invalidation_dead_letters{${api}}) > 0`, severity: 'critical',
      summary: '{{ $value }} cache invalidation(s) in the dead-letter table',
      description: 'Inspect ballast.cache_invalidation_dead_letters, fix the sink, then requeue them.',
      status: { section: 'invalidation queue' },
    },
    {
      alert: 'BallastWorkerDeadJobs', why: "ballast's graphile-worker jobs (tasks ballast_*) that used up their attempts.",
      expr: `max by (job, task) (ballast_worker_jobs_dead{${api}}) > 0`, severity: 'warning',
      summary: '{{ $value }} dead graphile-worker job(s) of task {{ $labels.task }}',
      description: "Look at the jobs view of the worker's schema (ballast_worker.jobs, or the schema ballast.worker_schema() names) where attempts >= max_attempts and task_identifier = '{{ $labels.task }}': last_error says why.",
      status: { section: 'worker' },
    },
    {
      alert: 'BallastMatviewStale', why: `A view may be max_delay stale by design; ${t.matviewStaleFactor} times that means refreshes are not keeping up.`,
      expr: `max by (job, view) (ballast_matview_staleness_seconds{${api}})\n  > ${t.matviewStaleFactor} * max by (job, view) (ballast_matview_max_delay_seconds{${api}})`,
      for: '2m', severity: 'warning',
      summary: 'Materialized view {{ $labels.view }} is stale for {{ $value | humanizeDuration }}',
      description: `More than ${t.matviewStaleFactor} times its max_delay. Check ballast.matview_status and the refresh processor.`,
      status: { section: 'materialized views' },
    },
    {
      alert: 'BallastMatviewRefreshFailing', why: 'Refreshes of one view failed several times in a row (not a single transient error).',
      expr: `max by (job, view) (ballast_matview_consecutive_failures{${api}}) >= ${t.matviewFailuresInARow}`, severity: 'critical',
      summary: 'Refresh of {{ $labels.view }} failed {{ $value }} times in a row',
      description: 'See last_error in ballast.matview_status.',
      status: { section: 'materialized views' },
    },
    {
      alert: 'BallastCleanupBehind', why: 'A cleanup policy missed scheduled runs: its table grows past its retention.',
      expr: `max by (job, policy) (ballast_cleanup_schedules_behind{${api}}) >= ${t.cleanupSchedulesBehind}`, for: '10m', severity: 'warning',
      summary: 'Cleanup of {{ $labels.policy }} missed {{ $value }} scheduled runs',
      description: 'Check ballast.cleanup_status (last error, rows behind) and pg_cron (cron.job_run_details).',
      status: { section: 'cleanup policies' },
    },
    {
      alert: 'BallastCleanupFailed', why: 'The last run of a cleanup policy ended in an error.',
      expr: `max by (job, policy) (ballast_cleanup_last_run_failed{${api}}) == 1`, severity: 'warning',
      summary: 'The last cleanup run of {{ $labels.policy }} failed',
      description: 'See last_error in ballast.cleanup_status; the next scheduled run retries.',
      status: { section: 'cleanup policies' },
    },
    {
      alert: 'BallastApiErrorRatio', why: `More than ${t.apiMaxErrorRatio * 100}% of requests answered 5xx over 5 minutes (and enough traffic to mean something).`,
      expr: `sum by (job) (rate(http_request_duration_seconds_count{${traffic}, status=~"5.."}[5m]))\n  / sum by (job) (rate(http_request_duration_seconds_count{${traffic}}[5m])) > ${t.apiMaxErrorRatio}\nand sum by (job) (rate(http_request_duration_seconds_count{${traffic}}[5m])) > ${t.apiMinRequestRate}`,
      for: '5m', severity: 'critical',
      summary: 'API 5xx ratio is {{ $value | humanizePercentage }}',
      description: 'Look at the API logs and the error reports (ERROR_REPORT_URL, or the worker log).',
      status: { section: 'API (last 5 minutes)' },
    },
    {
      alert: 'BallastApiLatencyP99', why: `p99 over all client routes above ${t.apiMaxP99S}s for 10 minutes.`,
      expr: `histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{${traffic}}[5m]))) > ${t.apiMaxP99S}`,
      for: '10m', severity: 'warning',
      summary: 'API p99 latency is {{ $value | humanizeDuration }}',
      description: 'Check database load (pg_stat_activity) and slow operations in ballast.performance_metrics.',
      status: { section: 'API (last 5 minutes)' },
    },
  ];
}

/** The GitHub-style anchor of a RUNBOOK.md heading that is the alert's name. */
export const runbookAnchor = (alert: string) => alert.toLowerCase();

const quote = (s: string) => JSON.stringify(s); // a YAML double-quoted scalar

/** The rule file (Prometheus YAML) for these options. */
export function renderAlertRules(o: AlertOptions = DEFAULT_ALERT_OPTIONS): string {
  const lines = [
    '# Prometheus alerting rules for ballast. GENERATED by `ballast alerts` (src/alerts.ts) with',
    `#   --api-job ${o.apiJob} --worker-job ${o.workerJob} --runbook-url ${o.runbookUrl}`,
    '# and the thresholds of src/thresholds.ts (BALLAST_ALERT_* variables); do not edit: regenerate with your',
    '# own jobs, e.g. `npx ballast alerts --api-job myapp-api --worker-job myapp-worker > ballast-alerts.yml`.',
    '# Database gauges come from every API replica (the API exports them), so they are aggregated per object.',
    '# Each alert has a unit test in tests/<alert>.test.yml and a section in docs/RUNBOOK.md.',
    'groups:',
    '  - name: ballast',
    '    rules:',
  ];
  for (const a of alerts(o)) {
    lines.push(`      - alert: ${a.alert}`, `        # ${a.why}`, '        expr: |');
    for (const l of a.expr.split('\n')) lines.push(`          ${l}`);
    if (a.for) lines.push(`        for: ${a.for}`);
    lines.push(`        labels: { severity: ${a.severity} }`, '        annotations:',
      `          summary: ${quote(a.summary)}`, `          description: ${quote(a.description)}`,
      `          runbook_url: ${quote(`${o.runbookUrl}#${runbookAnchor(a.alert)}`)}`, '');
  }
  return lines.join('\n');
}
