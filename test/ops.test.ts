// ops/: the Prometheus rules pass `promtool check rules`, every alert has its own unit test file and they
// pass `promtool test rules`; every metric name the Grafana dashboard and the alerts use is exported by a
// real running API's /metrics.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { ROOT } from '../scripts/lib/config.ts';
import { ensurePromtool } from '../scripts/lib/tools.ts';
import { cfg, startApi, stop, withClient } from './helpers.ts';

const RULES = path.join(ROOT, 'ops', 'prometheus', 'alerts.yml');
const TESTS = path.join(ROOT, 'ops', 'prometheus', 'tests');
const DASHBOARD = path.join(ROOT, 'ops', 'grafana', 'ballast.json');

const alertNames = () => [...fs.readFileSync(RULES, 'utf8').matchAll(/^\s*- alert: (\w+)/gm)].map((m) => m[1]);
const metricNames = (expr: string) => [...expr.matchAll(/\b((?:ballast|http|graphql)_[a-z0-9_]+)\b/g)].map((m) => m[1]);

it('promtool: the alert rules are valid and each alert passes its own unit tests', async () => {
  const promtool = await ensurePromtool();
  const check = await $({ nothrow: true, quiet: true })`${promtool} check rules ${RULES}`;
  assert.equal(check.exitCode, 0, check.stdout + check.stderr);
  const alerts = alertNames();
  assert.ok(alerts.length >= 7, `alerts: ${alerts.join(', ')}`);
  const files = fs.readdirSync(TESTS).filter((f) => f.endsWith('.test.yml')).sort();
  assert.deepEqual(files, alerts.map((a) => `${a}.test.yml`).sort(), 'one tests/<alert>.test.yml per alert, no more');
  for (const f of files) assert.match(fs.readFileSync(path.join(TESTS, f), 'utf8'), new RegExp(`alertname: ${f.replace('.test.yml', '')}\\b`), `${f} tests its alert`);
  const run = await $({ nothrow: true, quiet: true, cwd: TESTS })`${promtool} test rules ${files}`;
  assert.equal(run.exitCode, 0, run.stdout + run.stderr);
  assert.equal(run.stdout.match(/SUCCESS/g)?.length, files.length, run.stdout);
});

// A labelled database gauge has series only when its source has rows (a registered view, a finished
// cleanup run). Until then its name may be absent; each entry says which rows it needs. Capabilities not
// merged yet (refresh queue: issue 3, invalidation: issue 4) have no such tables, so their names are absent.
const NEEDS_ROWS: { prefix: string; rel: string; where: string }[] = [
  { prefix: 'ballast_cache_invalidation_', rel: 'ballast.cache_invalidation_queue', where: '' },
  { prefix: 'ballast_matview_refresh_pending', rel: 'ballast.materialized_view_refresh_queue', where: '' },
  { prefix: 'ballast_matview_seconds_since_refresh', rel: 'ballast.mv_refresh_log', where: 'where ok' },
  { prefix: 'ballast_matview_max_delay_seconds', rel: 'ballast.matview_status', where: 'where max_delay is not null' },
  { prefix: 'ballast_matview_', rel: 'ballast.matview_status', where: '' },
];

it('every metric the dashboard and the alerts use is exported by a running API', async (t) => {
  const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: { type: string; title: string; targets?: { expr: string }[] }[] };
  const exprs: string[] = [];
  for (const p of dashboard.panels.filter((p) => p.type !== 'row')) {
    assert.ok(p.targets?.length, `panel "${p.title}" has queries`);
    exprs.push(...p.targets!.map((x) => x.expr));
  }
  exprs.push(...[...fs.readFileSync(RULES, 'utf8').matchAll(/expr: (?:\|\n)?([\s\S]*?)\n\s+(?:for|labels):/g)].map((m) => m[1]));
  const used = [...new Set(exprs.flatMap(metricNames))].sort();
  assert.ok(used.includes('http_request_duration_seconds_bucket') && used.includes('ballast_cleanup_schedules_behind'), used.join(' '));

  // Rows that give the labelled gauges a series: a finished cleanup run, a job of a ballast_ task (the
  // worker gauges report ballast's tasks only: the schema may be an app's own runner's).
  const runId = await withClient(cfg.rootUrl, async (c) => {
    const hasWorker = (await c.query(`select to_regproc('ballast_worker.add_job') is not null as ok`)).rows[0].ok as boolean;
    if (hasWorker) await c.query(`select ballast_worker.add_job('ballast_ops_metrics_probe', '{}'::json, run_at => now() + interval '1 day', job_key => 'ballast_ops_metrics_probe')`);
    return (await c.query(`insert into ballast.cleanup_runs (policy, table_name, started_at, finished_at, cutoff, stopped_by)
      values ('ballast.idempotency_keys', 'ballast.idempotency_keys', now(), now(), now(), 'done') returning id`)).rows[0].id as string;
  });
  const api = await startApi({ METRICS_DB_CACHE_MS: '0' });
  try {
    await fetch(`${api.url}/health/ready`);
    // One GraphQL operation, so the per-operation counter has a sample to export.
    await fetch(`${api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"query Probe { __typename }"}' });
    const r = await fetch(`${api.url}/metrics`);
    if (r.status === 404 && !fs.existsSync(path.join(ROOT, 'api', 'metrics.ts'))) {
      t.skip('this API has no /metrics yet (it arrives with the API capability, issue 8)');
      return;
    }
    assert.equal(r.status, 200);
    const text = await r.text();
    const exported = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exported.add(m[1]);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_count', '_sum']) exported.add(m[1] + s);
    }
    const missing: string[] = [];
    await withClient(cfg.rootUrl, async (c) => {
      for (const name of used) {
        if (exported.has(name) && text.includes(`\n${name}`)) continue;
        const need = NEEDS_ROWS.find((n) => name.startsWith(n.prefix));
        if (need) {
          const rows = (await c.query(`select case when to_regclass($1::text) is null then 0
              else (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %s %s', $1::text, $2::text), false, true, '')))[1]::text::int end as n`,
            [need.rel, need.where])).rows[0].n as number;
          if (rows === 0) continue;
        }
        missing.push(name);
      }
    });
    assert.deepEqual(missing, [], `used by ops/ but not exported by /metrics:\n${text.split('\n').filter((l) => l.startsWith('ballast_db_metrics_source_up')).join('\n')}`);
  } finally {
    await stop(api);
    await withClient(cfg.rootUrl, async (c) => {
      await c.query('delete from ballast.cleanup_runs where id = $1', [runId]);
      if ((await c.query(`select to_regproc('ballast_worker.remove_job') is not null as ok`)).rows[0].ok) await c.query(`select ballast_worker.remove_job('ballast_ops_metrics_probe')`);
    });
  }
});
