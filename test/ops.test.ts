// ops/: the Prometheus rules are `ballast alerts`' output, pass `promtool check rules`, select every series
// by job, link their docs/RUNBOOK.md section, and every alert has its own unit test file passing `promtool
// test rules`; every PromQL expression of the Grafana dashboard passes `promtool check rules` and selects
// by the $job and $instance variables, and some panel shows every alert's series; the example scrape
// config passes `promtool check config` with the rules' job names; every metric name the dashboard and
// the alerts use is exported by a real running API's or worker's /metrics.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { ROOT } from '../scripts/lib/config.ts';
import { ensurePromtool } from '../scripts/lib/tools.ts';
import { alerts, DEFAULT_ALERT_OPTIONS, renderAlertRules, runbookAnchor } from '../src/alerts.ts';
import { cfg, freePort, runNode, startApi, startWorker, stop, waitFor, withClient } from './helpers.ts';

const RULES = path.join(ROOT, 'ops', 'prometheus', 'alerts.yml');
const TESTS = path.join(ROOT, 'ops', 'prometheus', 'tests');
const DASHBOARD = path.join(ROOT, 'ops', 'grafana', 'ballast.json');
const SCRAPE_CONFIG = path.join(ROOT, 'ops', 'prometheus', 'prometheus.yml');
const RUNBOOK = path.join(ROOT, 'docs', 'RUNBOOK.md');
type Dashboard = {
  templating: { list: { name: string; type: string; query?: { query: string } | string; multi?: boolean; includeAll?: boolean }[] };
  panels: { id: number; type: string; title: string; targets?: { refId: string; expr: string }[] }[];
};
const dashboard = () => JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const panelExprs = () => dashboard().panels.filter((p) => p.type !== 'row').flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, ...t })));
/** Each vector selector of a PromQL expression: the metric name and its {matchers} ('' when none). */
const selectors = (expr: string) => [...expr.replace(/"(?:[^"\\]|\\.)*"/g, (q) => q.replace(/[a-z_]/gi, 'x'))
  .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, (c) => ' '.repeat(c.length)) // label lists, same length
  .matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()(\{[^}]*\})?/g)]
  .filter((m) => !/^(by|without|on|ignoring|group_left|group_right|and|or|unless|bool|offset|le|x+)$/.test(m[1]) && !/^\d/.test(m[1]))
  .map((m) => ({ name: m[1], matchers: m[2] ? expr.slice(m.index! + m[1].length, m.index! + m[1].length + m[2].length) : '' }));

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

it('alerts.yml is `ballast alerts` with the defaults; every series is selected by job; each alert links its RUNBOOK.md section', async () => {
  assert.equal(fs.readFileSync(RULES, 'utf8'), renderAlertRules(), 'ops/prometheus/alerts.yml differs from src/alerts.ts: run `npm run ballast -- alerts > ops/prometheus/alerts.yml`');
  const cli = await runNode('bin/ballast.js', ['alerts']);
  assert.equal(cli.code, 0, cli.err);
  assert.equal(cli.out, renderAlertRules(), 'the command prints the same');
  const jobs = [`job="${DEFAULT_ALERT_OPTIONS.apiJob}"`, `job="${DEFAULT_ALERT_OPTIONS.workerJob}"`];
  for (const a of alerts()) {
    const sel = selectors(a.expr);
    assert.ok(sel.length > 0, a.alert);
    for (const s of sel) assert.ok(jobs.some((j) => s.matchers.includes(j)), `${a.alert}: ${s.name}${s.matchers} is not selected by job`);
  }
  // One section per alert, each alert's link lands on one, and no section is left without its alert.
  const runbook = fs.readFileSync(RUNBOOK, 'utf8');
  const sections = [...runbook.matchAll(/^## (Ballast\w+)\s*$/gm)].map((m) => m[1]);
  assert.deepEqual(sections.sort(), alerts().map((a) => a.alert).sort(), 'docs/RUNBOOK.md: one "## <alert>" section per alert');
  const links = [...fs.readFileSync(RULES, 'utf8').matchAll(/runbook_url: "docs\/RUNBOOK\.md#([a-z0-9]+)"/g)].map((m) => m[1]);
  assert.deepEqual(links, alerts().map((a) => runbookAnchor(a.alert)));
  for (const s of runbook.split(/^## /m).slice(1).filter((s) => s.startsWith('Ballast'))) {
    assert.match(s, /\*\*Look at\*\*/, `${s.split('\n')[0]}: what to look at`);
    assert.match(s, /\*\*Do\*\*/, `${s.split('\n')[0]}: what to do`);
  }

  // Another operator's job names: every selector follows, and promtool accepts the result.
  const promtool = await ensurePromtool();
  const mine = await runNode('bin/ballast.js', ['alerts', '--api-job', 'shop-api', '--worker-job', 'shop-worker', '--runbook-url', 'https://wiki.example.com/ballast']);
  assert.equal(mine.code, 0, mine.err);
  assert.doesNotMatch(mine.out, /ballast-api|ballast-worker/);
  assert.match(mine.out, /up\{job="shop-worker"\} == 0/);
  assert.match(mine.out, /runbook_url: "https:\/\/wiki\.example\.com\/ballast#ballastapidown"/);
  const file = path.join(ROOT, '.ballast', `alerts-shop-${process.pid}.yml`);
  fs.writeFileSync(file, mine.out);
  try {
    const check = await $({ nothrow: true, quiet: true })`${promtool} check rules ${file}`;
    assert.equal(check.exitCode, 0, check.stdout + check.stderr);
  } finally {
    fs.rmSync(file, { force: true });
  }
  const bad = await runNode('bin/ballast.js', ['alerts', '--api-job', 'a"b']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--api-job must be a job label value .* got "a\\"b"/);
});

/** The dashboard's expressions as recording rules, Grafana's variables replaced by what they stand for. */
function dashboardRules(d: Dashboard): string {
  const rules = d.panels.filter((p) => p.type !== 'row').flatMap((p) => (p.targets ?? []).map((t) => {
    const expr = t.expr.replaceAll('$job', '.+').replaceAll('$instance', '.+').replaceAll('$__rate_interval', '5m');
    return `      - record: dashboard:panel_${p.id}_${t.refId}\n        expr: ${JSON.stringify(expr)}`;
  }));
  return `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`;
}

it('the dashboard: every panel expression passes promtool, selects by $job and $instance, and every alert\'s series has a panel', async () => {
  const d = dashboard();
  for (const name of ['job', 'instance']) {
    const v = d.templating.list.find((x) => x.name === name);
    assert.ok(v && v.type === 'query' && v.multi && v.includeAll, `a multi-value "${name}" variable: ${JSON.stringify(v)}`);
  }
  const exprs = panelExprs();
  assert.ok(exprs.length >= 20, `${exprs.length} expressions`);
  for (const e of exprs) {
    assert.doesNotMatch(e.expr.replace(/\$(job|instance)\b/g, ''), /\$/, `panel "${e.panel.title}" ${e.refId}: a variable the check does not know`);
    for (const s of selectors(e.expr)) {
      assert.ok(s.matchers.includes('job=~"$job"') && s.matchers.includes('instance=~"$instance"'), `panel "${e.panel.title}" ${e.refId}: ${s.name}${s.matchers} does not use $job and $instance`);
    }
  }
  const promtool = await ensurePromtool();
  const check = async (text: string) => {
    const file = path.join(ROOT, '.ballast', `dashboard-rules-${process.pid}.yml`);
    fs.writeFileSync(file, text);
    try {
      return await $({ nothrow: true, quiet: true })`${promtool} check rules ${file}`;
    } finally {
      fs.rmSync(file, { force: true });
    }
  };
  const ok = await check(dashboardRules(d));
  assert.equal(ok.exitCode, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  // The check can fail: one broken panel expression is refused.
  const broken = structuredClone(d);
  broken.panels.find((p) => p.targets?.length)!.targets![0].expr = 'sum by (status (rate(http_request_duration_seconds_count[5m]))';
  const refused = await check(dashboardRules(broken));
  assert.notEqual(refused.exitCode, 0, 'promtool refuses a broken expression');
  assert.match(refused.stderr + refused.stdout, /parse error/);

  // A panel for every alert's series.
  const shown = new Set(exprs.flatMap((e) => selectors(e.expr).map((s) => s.name)));
  const missing = [...new Set(alerts().flatMap((a) => selectors(a.expr).map((s) => s.name)))].filter((n) => !shown.has(n));
  assert.deepEqual(missing, [], 'series an alert watches that no panel shows');
});

it('the example scrape config passes promtool check config and names the jobs the rules select', async () => {
  const promtool = await ensurePromtool();
  const check = await $({ nothrow: true, quiet: true, cwd: path.dirname(SCRAPE_CONFIG) })`${promtool} check config ${SCRAPE_CONFIG}`;
  assert.equal(check.exitCode, 0, check.stdout + check.stderr);
  assert.match(check.stdout, /SUCCESS: .*rules found/);
  const text = fs.readFileSync(SCRAPE_CONFIG, 'utf8');
  const jobs = [...text.matchAll(/job_name: (\S+)/g)].map((m) => m[1]).sort();
  assert.deepEqual(jobs, [DEFAULT_ALERT_OPTIONS.apiJob, DEFAULT_ALERT_OPTIONS.workerJob].sort());
  assert.match(text, /rule_files:\s*\n\s*- alerts\.yml/);
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
  const exprs: string[] = [];
  for (const p of dashboard().panels.filter((p) => p.type !== 'row')) {
    assert.ok(p.targets?.length, `panel "${p.title}" has queries`);
    exprs.push(...p.targets!.map((x) => x.expr));
  }
  exprs.push(...alerts().map((a) => a.expr));
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
  const workerPort = await freePort();
  const worker = startWorker({ WORKER_METRICS_PORT: String(workerPort) });
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
    // The worker's own series (ballast_worker_task_runs_total, …) come from its /metrics.
    const workerText = await waitFor('the worker\'s /metrics', async () => {
      const w = await fetch(`http://127.0.0.1:${workerPort}/metrics`).catch(() => undefined);
      return w?.ok ? w.text() : undefined;
    });
    const text = (await r.text()) + workerText;
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
    await stop(worker);
    await withClient(cfg.rootUrl, async (c) => {
      await c.query('delete from ballast.cleanup_runs where id = $1', [runId]);
      if ((await c.query(`select to_regproc('ballast_worker.remove_job') is not null as ok`)).rows[0].ok) await c.query(`select ballast_worker.remove_job('ballast_ops_metrics_probe')`);
    });
  }
});
