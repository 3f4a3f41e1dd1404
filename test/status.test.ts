// npm run status: runs the real script against the test database; --json is parseable and lists every
// section; a failing item (a cleanup run that ended in an error) makes it exit 1 and name that item.
// Status and alerts agree: on one database, healthy and then broken in many ways, every alert that the
// status screen mirrors selects (in promtool, over a real API's scraped /metrics, as two replicas) exactly
// as many series as status has FAIL items naming it.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { ROOT } from '../scripts/lib/config.ts';
import { ensurePromtool } from '../scripts/lib/tools.ts';
import { alerts, DEFAULT_ALERT_OPTIONS } from '../src/alerts.ts';
import { status as readStatus } from '../src/status.ts';
import { DEFAULT_THRESHOLDS, thresholdsFromEnv } from '../src/thresholds.ts';
import { cfg, runNode, startApi, stop, withClient } from './helpers.ts';
import type { Status } from '../src/status.ts';

const status = (args: string[]) => runNode('scripts/status.ts', args);

it('status: json output, and exit 1 while a cleanup run has failed', async () => {
  const before = await status(['--json']);
  const st = JSON.parse(before.out) as Status;
  assert.deepEqual(st.sections.map((s) => s.section),
    ['worker', 'invalidation queue', 'materialized views', 'pg_cron jobs', 'cleanup policies', 'idempotency keys', 'API (last 5 minutes)']);
  assert.equal(before.code, st.failing ? 1 : 0, before.err);
  const cleanupSection = st.sections.find((s) => s.section === 'cleanup policies')!;
  assert.ok(cleanupSection.available);
  assert.ok(cleanupSection.items.some((i) => i.name === 'ballast.idempotency_keys'), JSON.stringify(cleanupSection));
  assert.ok(st.sections.find((s) => s.section === 'idempotency keys')!.available);

  const id = await withClient(cfg.rootUrl, async (c) => (await c.query(
    `insert into ballast.cleanup_runs (policy, table_name, started_at, finished_at, cutoff, stopped_by, error)
     values ('ballast.idempotency_keys', 'ballast.idempotency_keys', now(), now(), now(), 'error', '57014 status test: canceling statement')
     returning id`)).rows[0].id as string);
  try {
    const failing = await status(['--json']);
    assert.equal(failing.code, 1, failing.out);
    const f = JSON.parse(failing.out) as Status;
    assert.equal(f.failing, st.failing + 1);
    const item = f.sections.find((s) => s.section === 'cleanup policies')!.items.find((i) => i.name === 'ballast.idempotency_keys')!;
    assert.equal(item.state, 'FAIL');
    assert.match(item.detail, /status test: canceling statement/);

    // The table form on a pipe: no colour codes, the FAIL row and the count.
    const table = await status([]);
    assert.equal(table.code, 1);
    assert.doesNotMatch(table.out, /\x1b\[/);
    assert.match(table.out, /cleanup policies\s+ballast\.idempotency_keys\s+FAIL\s+last run failed: 57014/);
    assert.match(table.out, /\d+ failing\n$/);
  } finally {
    await withClient(cfg.rootUrl, (c) => c.query('delete from ballast.cleanup_runs where id = $1', [id]));
  }
  const after = await status(['--json']);
  assert.equal((JSON.parse(after.out) as Status).failing, st.failing);
});

/** Scraped /metrics samples (ballast_* only) as promtool input series of two replicas of the API's job. */
function replicaSeries(metricsText: string): string[] {
  const out: string[] = [];
  for (const line of metricsText.split('\n')) {
    const m = /^(ballast_[a-z0-9_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || !Number.isFinite(Number(m[3]))) continue;
    for (const instance of ['a:5678', 'b:5678']) {
      const labels = [`job="${DEFAULT_ALERT_OPTIONS.apiJob}"`, `instance="${instance}"`, ...(m[2] ? [m[2]] : [])].join(',');
      out.push(`      - series: '${`${m[1]}{${labels}}`.replaceAll("'", "''")}'\n        values: '${m[3]}x15'`);
    }
  }
  return out;
}

/** The API's last 5 minutes as status read them, as the HTTP series Prometheus would have scraped. */
function trafficSeries(st: Status): string[] {
  const v = st.sections.find((s) => s.section === 'API (last 5 minutes)')!.items[0].values as { rate_per_s: number; error_ratio: number; p99_ms: number | null; requests: number };
  if (!v.requests) return [];
  const job = `job="${DEFAULT_ALERT_OPTIONS.apiJob}",instance="a:5678",method="POST",route="/graphql"`;
  const perMin = v.rate_per_s * 60;
  // All requests at or under p99 but 1%: histogram_quantile(0.99, …) reads exactly p99 from these buckets.
  return [
    `      - series: 'http_request_duration_seconds_count{${job},status="200"}'\n        values: '0+${perMin * (1 - v.error_ratio)}x15'`,
    `      - series: 'http_request_duration_seconds_count{${job},status="500"}'\n        values: '0+${perMin * v.error_ratio}x15'`,
    `      - series: 'http_request_duration_seconds_bucket{${job},status="200",le="${(v.p99_ms ?? 0) / 1000}"}'\n        values: '0+${perMin * 0.99}x15'`,
    `      - series: 'http_request_duration_seconds_bucket{${job},status="200",le="+Inf"}'\n        values: '0+${perMin}x15'`,
  ];
}

/** Each alert's expression as ops/prometheus/alerts.yml (what operators deploy) has it. */
function deployedExprs(): Map<string, string> {
  const rules = fs.readFileSync(path.join(ROOT, 'ops', 'prometheus', 'alerts.yml'), 'utf8');
  return new Map([...rules.matchAll(/- alert: (\w+)\n(?:\s+#.*\n)*\s+expr: \|\n((?:\s{10}.*\n)+)/g)]
    .map((m) => [m[1], m[2].split('\n').map((l) => l.slice(10)).join('\n').trim()]));
}

/** For each alert status mirrors: how many series its expression selects, per promtool, must equal its FAIL items. */
async function assertAgree(apiUrl: string, what: string): Promise<Map<string, number>> {
  const st = await readStatus(cfg.ownerUrl);
  const metrics = await (await fetch(`${apiUrl}/metrics`)).text();
  const exprs = deployedExprs();
  const mirrored = alerts().filter((a) => 'section' in a.status).map((a) => ({ ...a, expr: exprs.get(a.alert)! }));
  assert.ok(mirrored.every((a) => a.expr), `every mirrored alert is in alerts.yml: ${[...exprs.keys()].join(' ')}`);
  const fails = new Map(mirrored.map((a) => [a.alert, 0]));
  for (const s of st.sections) for (const i of s.items) for (const a of i.alerts) fails.set(a, (fails.get(a) ?? 0) + 1);
  for (const s of st.sections) for (const i of s.items) assert.equal(i.state === 'FAIL', i.alerts.length > 0, `${s.section} ${i.name}: FAIL exactly when an alert's condition holds`);
  const test = [
    'rule_files: []', 'evaluation_interval: 1m', 'tests:', '  - interval: 1m', '    input_series:',
    ...replicaSeries(metrics), ...trafficSeries(st),
    '    promql_expr_test:',
    ...mirrored.map((a) => `      - expr: ${JSON.stringify(`count(${a.expr}) or vector(0)`)}\n        eval_time: 10m\n        exp_samples:\n          - labels: '{}'\n            value: ${fails.get(a.alert)}`),
    '',
  ].join('\n');
  const file = path.join(ROOT, '.ballast', `agree-${process.pid}.test.yml`);
  fs.writeFileSync(file, test);
  try {
    const run = await $({ nothrow: true, quiet: true })`${await ensurePromtool()} test rules ${file}`;
    assert.equal(run.exitCode, 0, `${what}: status FAIL items per alert ${JSON.stringify(Object.fromEntries(fails))} but promtool says:\n${run.stdout}${run.stderr}`);
  } finally {
    fs.rmSync(file, { force: true });
  }
  return fails;
}

it('status and the alerts agree: FAIL items per alert = series its expression selects, healthy and broken', async () => {
  const api = await startApi({ METRICS_DB_CACHE_MS: '0' });
  const VIEW = 'ballast.api_metrics_hourly';
  const saved = await withClient(cfg.rootUrl, async (c) => (await c.query(
    'select consecutive_failures, next_attempt_at from ballast.registered_matviews where matview = $1::regclass', [VIEW])).rows[0]);
  try {
    // The last 5 minutes of requests are this test's own: earlier suites' traffic (1,000 idempotent
    // duplicates, say) would dilute the slow and failing rows it writes below the alerts' thresholds.
    await withClient(cfg.rootUrl, (c) => c.query(`delete from ballast.performance_metrics where created_at > now() - interval '10 minutes'`));
    // Healthy: a worker beat just now.
    await withClient(cfg.rootUrl, (c) => c.query(`insert into ballast.worker_heartbeats (worker_id, hostname, pid) values ('agree-test', 'test-host', 1)
      on conflict (worker_id) do update set last_seen_at = now()`));
    const healthy = await assertAgree(api.url, 'healthy');
    assert.equal(healthy.get('BallastWorkerHeartbeatStale'), 0);

    // Broken in every way the database can show.
    await withClient(cfg.rootUrl, async (c) => {
      await c.query(`update ballast.worker_heartbeats set last_seen_at = now() - interval '1 hour'`);
      await c.query(`insert into ballast.cache_invalidation_dead_letters (id, tag, enqueued_at, retry_count, attempts) values (-4242, 'agree:dead', now(), 10, 10)`);
      await c.query(`insert into ballast.cache_invalidation_queue (tag, enqueued_at, next_attempt_at) values ('agree:old', now() - interval '1 hour', now() + interval '1 day')`);
      await c.query(`insert into ballast.cleanup_runs (policy, table_name, started_at, finished_at, cutoff, stopped_by, error)
        values ('ballast.idempotency_keys', 'ballast.idempotency_keys', now(), now(), now(), 'error', 'agree test')`);
      // a view 3 hours stale (max_delay 1 hour) and failing, in backoff so the refresh processor leaves it alone
      await c.query(`update ballast.registered_matviews set consecutive_failures = 3, next_attempt_at = now() + interval '1 hour' where matview = $1::regclass`, [VIEW]);
      await c.query(`insert into ballast.materialized_view_refresh_queue (matview, requested_at) values ($1::regclass, now() - interval '3 hours')`, [VIEW]);
      const id = (await c.query(`select (ballast_worker.add_job('ballast_heartbeat', '{}'::json, run_at => now() + interval '1 day', job_key => 'agree_dead')).id`)).rows[0].id;
      await c.query(`select ballast_worker.permanently_fail_jobs(array[$1::bigint], 'agree test')`, [id]);
      // 60 requests in the last 5 minutes (0.2/s), 6 of them 500 (10%), some slow (2.5 s)
      await c.query(`insert into ballast.performance_metrics (created_at, endpoint, method, status_code, response_time_ms, request_id)
        select now() - interval '1 second' * g, '/graphql', 'POST', case when g % 10 = 0 then 500 else 200 end,
               case when g % 20 = 0 then 2500 else 20 end, 'agree-' || g from generate_series(1, 60) g`);
    });
    const broken = await assertAgree(api.url, 'broken');
    for (const a of ['BallastWorkerHeartbeatStale', 'BallastInvalidationDeadLetters', 'BallastInvalidationQueueBacklog', 'BallastCleanupFailed',
      'BallastMatviewStale', 'BallastMatviewRefreshFailing', 'BallastWorkerDeadJobs', 'BallastApiErrorRatio', 'BallastApiLatencyP99']) {
      assert.ok((broken.get(a) ?? 0) >= 1, `${a} is exercised: ${JSON.stringify(Object.fromEntries(broken))}`);
    }
  } finally {
    await stop(api);
    await withClient(cfg.rootUrl, async (c) => {
      await c.query(`delete from ballast.worker_heartbeats where worker_id = 'agree-test'`);
      await c.query(`delete from ballast.cache_invalidation_dead_letters where id = -4242`);
      await c.query(`delete from ballast.cache_invalidation_queue where tag = 'agree:old'`);
      await c.query(`delete from ballast.cleanup_runs where error = 'agree test'`);
      await c.query(`delete from ballast.materialized_view_refresh_queue where matview = $1::regclass and requested_at < now() - interval '2 hours'`, [VIEW]);
      await c.query(`update ballast.registered_matviews set consecutive_failures = $2, next_attempt_at = $3 where matview = $1::regclass`, [VIEW, saved.consecutive_failures, saved.next_attempt_at]);
      await c.query(`select ballast_worker.remove_job('agree_dead')`);
      await c.query(`delete from ballast.performance_metrics where request_id like 'agree-%'`);
    });
  }
});

it('status and alerts read one set of thresholds: the rules carry them, BALLAST_ALERT_* moves both', async () => {
  const rules = fs.readFileSync(path.join(ROOT, 'ops', 'prometheus', 'alerts.yml'), 'utf8');
  const t = DEFAULT_THRESHOLDS;
  for (const [alert, needle] of [
    ['BallastWorkerHeartbeatStale', `> ${t.workerMaxHeartbeatAgeS}`], ['BallastInvalidationQueueBacklog', `> ${t.invalidationMaxPendingAgeS}`],
    ['BallastMatviewStale', `> ${t.matviewStaleFactor} * max`], ['BallastMatviewRefreshFailing', `>= ${t.matviewFailuresInARow}`],
    ['BallastCleanupBehind', `>= ${t.cleanupSchedulesBehind}`], ['BallastApiErrorRatio', `> ${t.apiMaxErrorRatio}\nand`],
    ['BallastApiErrorRatio', `[5m])) > ${t.apiMinRequestRate}`], ['BallastApiLatencyP99', `> ${t.apiMaxP99S}`],
  ] as const) {
    const rule = rules.split('- alert: ').find((r) => r.startsWith(alert + '\n'))!;
    const esc = needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    assert.match(rule.replace(/\n\s+/g, '\n'), new RegExp(`${esc}(?![\\d.])`), `${alert} carries ${needle}`);
  }
  // One variable moves the rules and the status screen alike.
  const env = { BALLAST_ALERT_WORKER_MAX_HEARTBEAT_AGE_S: '7200' };
  const gen = await runNode('bin/ballast.js', ['alerts'], { env });
  assert.match(gen.out, /ballast_worker_heartbeat_age_seconds\{job="ballast-api"\}\) > 7200/);
  assert.equal(thresholdsFromEnv(env).workerMaxHeartbeatAgeS, 7200);
  await withClient(cfg.rootUrl, (c) => c.query(`insert into ballast.worker_heartbeats (worker_id, hostname, pid, last_seen_at) values ('thresholds-test', 'h', 1, now() - interval '1 hour')`));
  try {
    await withClient(cfg.rootUrl, (c) => c.query(`delete from ballast.worker_heartbeats where worker_id <> 'thresholds-test' and last_seen_at > now() - interval '1 hour'`));
    const heartbeat = (st: Status) => st.sections.find((s) => s.section === 'worker')!.items.find((i) => i.name === 'heartbeat')!;
    const dflt = JSON.parse((await status(['--json'])).out) as Status;
    assert.equal(heartbeat(dflt).state, 'FAIL', JSON.stringify(heartbeat(dflt)));
    assert.deepEqual(heartbeat(dflt).alerts, ['BallastWorkerHeartbeatStale']);
    const moved = JSON.parse((await runNode('scripts/status.ts', ['--json'], { env })).out) as Status;
    assert.equal(heartbeat(moved).state, 'ok', JSON.stringify(heartbeat(moved)));
    const bad = await runNode('bin/ballast.js', ['alerts'], { env: { BALLAST_ALERT_MATVIEW_FAILURES_IN_A_ROW: '2.5' } });
    assert.equal(bad.code, 2);
    assert.match(bad.err, /BALLAST_ALERT_MATVIEW_FAILURES_IN_A_ROW must be a non-negative whole number .* got "2.5"/);
  } finally {
    await withClient(cfg.rootUrl, (c) => c.query(`delete from ballast.worker_heartbeats where worker_id = 'thresholds-test'`));
  }
});

it('status counts sampled request rows by their weight: rate, 5xx share and p99 are those of all requests', async () => {
  const apiItem = async () => (await readStatus(cfg.ownerUrl)).sections.find((s) => s.section === 'API (last 5 minutes)')!.items[0]
    .values as { requests: number; errors: number; p99_ms: number };
  const before = await apiItem();
  try {
    // REQUEST_TRACING_SAMPLE = 0.1: 10 sampled ordinary rows stand for 100 requests; 1 5xx row, always kept, for itself
    await withClient(cfg.rootUrl, (c) => c.query(`select ballast.record_performance_metrics(
      (select jsonb_agg(jsonb_build_object('created_at', now(), 'endpoint', '/graphql', 'method', 'POST',
         'status_code', case when g = 0 then 500 else 200 end, 'response_time_ms', 5, 'request_id', 'weighted-' || g,
         'sample_weight', case when g = 0 then 1 else 10 end)) from generate_series(0, 10) g))`));
    const after = await apiItem();
    assert.equal(after.requests - before.requests, 101, 'ten sampled rows of weight 10 and one 5xx row');
    assert.equal(after.errors - before.errors, 1);
  } finally {
    await withClient(cfg.rootUrl, (c) => c.query(`delete from ballast.performance_metrics where request_id like 'weighted-%'`));
  }
});
