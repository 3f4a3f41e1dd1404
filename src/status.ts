// status(): the operator's one screen: worker heartbeats and dead jobs, invalidation queue, materialized
// views, pg_cron jobs, cleanup policies, idempotency keys and API traffic of the last 5 minutes. Every
// section reads a view or table only when it exists (to_regclass), so it works on any database that has
// some of the capabilities. `ballast status` prints it (exit 1 when any item is failing); `npm run status`
// is the same.
//
// An item reads FAIL exactly when the condition of one of ballast's Prometheus alerts holds for it, and
// names those alerts: the verdicts compare the very gauges the alerts watch (ballast.metrics_snapshot(),
// which the API exports on /metrics) with the same thresholds (src/thresholds.ts). What no alert watches
// (a single failed refresh, an unpopulated view, a failed pg_cron run) reads warn. Only an alert's `for:`
// (how long the condition must last) is Prometheus's alone: this screen is one moment.
import pg from 'pg';
import { formatTable } from './table.ts';
import { DEFAULT_THRESHOLDS, type Thresholds } from './thresholds.ts';

export { DEFAULT_THRESHOLDS, thresholdsFromEnv } from './thresholds.ts';
/** When an item counts as failing (the alerts' thresholds). */
export type StatusThresholds = Thresholds;

/** `alerts`: the alerts whose condition holds for this item (FAIL when there is any). */
export type Item = { name: string; state: 'ok' | 'warn' | 'FAIL'; detail: string; alerts: string[]; values: Record<string, unknown> };
export type Section = { section: string; available: boolean; items: Item[] };
export type Status = { at: string; database: string; failing: number; sections: Section[] };

/** The database gauges of /metrics, as the alerts see them (one API replica's view). */
class Gauges {
  private readonly rows: { metric: string; labels: Record<string, unknown>; value: number }[];
  constructor(rows: { metric: string; labels: Record<string, unknown>; value: number }[]) {
    this.rows = rows;
  }
  /** The value of `metric` whose labels include `labels`, or undefined when there is no such series. */
  get(metric: string, labels: Record<string, string> = {}): number | undefined {
    return this.rows.find((r) => r.metric === metric && Object.entries(labels).every(([k, v]) => String(r.labels[k]) === v))?.value;
  }
  all(metric: string): { labels: Record<string, unknown>; value: number }[] {
    return this.rows.filter((r) => r.metric === metric);
  }
}

/** An item from its checks: each [alert, condition, problem] that holds makes it FAIL; warnings make it warn. */
function item(name: string, checks: [alert: string, holds: boolean, problem: string][], warnings: string[], okDetail: string, values: Record<string, unknown>): Item {
  const failing = checks.filter(([, holds]) => holds);
  const problems = [...failing.map(([, , p]) => p), ...warnings];
  return {
    name,
    state: failing.length ? 'FAIL' : warnings.length ? 'warn' : 'ok',
    detail: problems.length ? problems.join('; ') : okDetail,
    alerts: failing.map(([a]) => a),
    values,
  };
}

/** Seconds of a PostgreSQL interval as returned by node-postgres (an object), or a number of seconds. */
function seconds(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  const i = v as { days?: number; hours?: number; minutes?: number; seconds?: number; milliseconds?: number };
  return (i.days ?? 0) * 86400 + (i.hours ?? 0) * 3600 + (i.minutes ?? 0) * 60 + (i.seconds ?? 0) + (i.milliseconds ?? 0) / 1000;
}
function human(s: number | null): string {
  if (s === null || Number.isNaN(s)) return '-';
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 120) return `${s.toFixed(1)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}
function ago(t: unknown): string {
  if (!t) return 'never';
  return `${human((Date.now() - new Date(t as string).getTime()) / 1000)} ago`;
}
function plain(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (v instanceof Date) out[k] = v.toISOString();
    else if (v && typeof v === 'object' && !Array.isArray(v) && ('seconds' in v || 'minutes' in v || 'hours' in v || 'days' in v || 'milliseconds' in v || Object.keys(v).length === 0)) out[k] = seconds(v);
    else if (typeof v === 'bigint') out[k] = Number(v);
    else out[k] = v;
  }
  return out;
}

async function exists(c: pg.Client, rel: string): Promise<boolean> {
  const r = await c.query('select to_regclass($1) is not null as ok', [rel]);
  return r.rows[0].ok as boolean;
}

async function worker(c: pg.Client, th: Thresholds, g: Gauges): Promise<Section> {
  const s: Section = { section: 'worker', available: await exists(c, 'ballast.worker_heartbeats'), items: [] };
  if (!s.available) return s;
  const hb = (await c.query(`select count(*)::int as workers, max(last_seen_at) as newest,
      (array_agg(hostname || ' pid ' || pid order by last_seen_at desc))[1] as newest_worker
    from ballast.worker_heartbeats`)).rows.map(plain)[0];
  const age = g.get('ballast_worker_heartbeat_age_seconds');
  hb.heartbeat_age_s = age ?? null;
  s.items.push(item('heartbeat', [
    ['BallastWorkerHeartbeatStale', age !== undefined && (age > th.workerMaxHeartbeatAgeS || age < 0),
      age !== undefined && age < 0 ? 'no worker has ever recorded a heartbeat' : `newest heartbeat ${human(age ?? null)} ago > ${human(th.workerMaxHeartbeatAgeS)}`],
  ], [], `newest heartbeat ${human(age ?? null)} ago (${hb.newest_worker ?? '-'}), ${hb.workers} worker(s) recorded`, hb));
  const tasks = new Map<string, Record<string, unknown>>();
  for (const [metric, key] of [['ballast_worker_jobs_pending', 'pending'], ['ballast_worker_jobs_running', 'running'], ['ballast_worker_jobs_dead', 'dead'],
    ['ballast_worker_jobs_oldest_pending_seconds', 'oldest_pending_s']] as const) {
    for (const r of g.all(metric)) {
      const task = String(r.labels.task);
      tasks.set(task, { ...(tasks.get(task) ?? { task }), [key]: r.value });
    }
  }
  for (const [task, v] of [...tasks].sort(([a], [b]) => a.localeCompare(b))) {
    const dead = Number(v.dead ?? 0);
    s.items.push(item(task, [['BallastWorkerDeadJobs', dead > 0, `${dead} dead job(s) (attempts used up)`]], [],
      `pending ${v.pending ?? 0}, running ${v.running ?? 0}, dead 0, oldest pending ${human(Number(v.oldest_pending_s ?? 0))}`, v));
  }
  return s;
}

async function invalidation(c: pg.Client, th: Thresholds, g: Gauges): Promise<Section> {
  const s: Section = { section: 'invalidation queue', available: await exists(c, 'ballast.cache_invalidation_stats'), items: [] };
  if (!s.available) return s;
  const row = plain((await c.query('select * from ballast.cache_invalidation_stats')).rows[0] ?? {});
  const dead = g.get('ballast_cache_invalidation_dead_letters') ?? 0;
  const age = g.get('ballast_cache_invalidation_oldest_pending_seconds') ?? 0;
  s.items.push(item('cache_invalidation_queue', [
    ['BallastInvalidationDeadLetters', dead > 0, `${dead} dead letter(s)`],
    ['BallastInvalidationQueueBacklog', age > th.invalidationMaxPendingAgeS, `oldest pending ${human(age)} > ${human(th.invalidationMaxPendingAgeS)}`],
  ], [], `pending ${row.pending ?? 0}, leased ${row.leased ?? 0}, retried ${row.retried ?? 0}, dead ${dead}, oldest ${human(row.oldest_pending_age as number | null)}`, row));
  return s;
}

async function matviews(c: pg.Client, th: Thresholds, g: Gauges): Promise<Section> {
  const s: Section = { section: 'materialized views', available: await exists(c, 'ballast.matview_status'), items: [] };
  if (!s.available) return s;
  const rows = (await c.query('select matview::text as name, * from ballast.matview_status order by 1')).rows.map(plain);
  for (const r of rows) {
    const view = { view: String(r.name) };
    const staleness = g.get('ballast_matview_staleness_seconds', view);
    const maxDelay = g.get('ballast_matview_max_delay_seconds', view);
    const failures = g.get('ballast_matview_consecutive_failures', view) ?? 0;
    const warnings: string[] = [];
    if (r.populated === false) warnings.push('not populated');
    if (r.last_attempt_ok === false && failures < th.matviewFailuresInARow) warnings.push(`last refresh failed (${failures} in a row): ${String(r.last_error ?? '').slice(0, 80)}`);
    s.items.push(item(String(r.name), [
      ['BallastMatviewStale', staleness !== undefined && maxDelay !== undefined && staleness > th.matviewStaleFactor * maxDelay,
        `stale ${human(staleness ?? null)} > ${th.matviewStaleFactor} x max_delay ${human(maxDelay ?? null)}`],
      ['BallastMatviewRefreshFailing', failures >= th.matviewFailuresInARow, `${failures} failed refreshes in a row: ${String(r.last_error ?? '').slice(0, 80)}`],
    ], warnings, `pending since ${r.pending_since ? ago(r.pending_since) : '-'}, last refresh ${ago(r.last_refresh_at)}, staleness ${human(r.staleness as number | null)}`, r));
  }
  return s;
}

async function cronJobs(c: pg.Client): Promise<Section> {
  const s: Section = { section: 'pg_cron jobs', available: await exists(c, 'cron.job'), items: [] };
  if (!s.available) return s;
  const details = await exists(c, 'cron.job_run_details');
  const rows = (await c.query(details
    ? `select j.jobid, coalesce(j.jobname, j.jobid::text) as name, j.schedule, j.active, d.status, d.start_time, d.end_time,
              extract(epoch from d.end_time - d.start_time)::float8 as duration_s, d.return_message
       from cron.job j
       left join lateral (select * from cron.job_run_details d where d.jobid = j.jobid order by d.start_time desc nulls last limit 1) d on true
       order by 2`
    : `select j.jobid, coalesce(j.jobname, j.jobid::text) as name, j.schedule, j.active from cron.job j order by 2`)).rows.map(plain);
  for (const r of rows) {
    // No alert watches pg_cron itself (the jobs' effects are watched: cleanup behind, views stale), so warn.
    const failed = r.status === 'failed';
    s.items.push({
      name: String(r.name),
      state: failed || r.active === false ? 'warn' : 'ok',
      alerts: [],
      detail: failed ? `last run failed ${ago(r.start_time)}: ${String(r.return_message ?? '').slice(0, 80)}`
        : `${r.schedule}${r.active === false ? ' (inactive)' : ''}, last run ${ago(r.start_time)}${r.status ? ` ${r.status}` : ''}${r.duration_s != null ? ` in ${human(Number(r.duration_s))}` : ''}`,
      values: r,
    });
  }
  return s;
}

async function cleanup(c: pg.Client, th: Thresholds, g: Gauges): Promise<Section> {
  const s: Section = { section: 'cleanup policies', available: await exists(c, 'ballast.cleanup_status'), items: [] };
  if (!s.available) return s;
  const rows = (await c.query('select * from ballast.cleanup_status order by table_name')).rows.map(plain);
  for (const r of rows) {
    const policy = { policy: String(r.table_name) };
    const behind = g.get('ballast_cleanup_schedules_behind', policy) ?? 0;
    const failed = g.get('ballast_cleanup_last_run_failed', policy) === 1;
    s.items.push(item(String(r.table_name), [
      ['BallastCleanupFailed', failed, `last run failed: ${String(r.last_error ?? '').slice(0, 80)}`],
      ['BallastCleanupBehind', behind >= th.cleanupSchedulesBehind, `${behind} scheduled runs missed`],
    ], r.enabled === false ? ['disabled'] : [],
    `last run ${ago(r.last_run_at)}${r.last_rows_deleted != null ? ` (${r.last_rows_deleted} deleted)` : ''}, rows behind ~${r.rows_behind ?? '?'}`, r));
  }
  return s;
}

async function idempotency(c: pg.Client): Promise<Section> {
  const s: Section = { section: 'idempotency keys', available: await exists(c, 'ballast.idempotency_keys'), items: [] };
  if (!s.available) return s;
  const r = plain((await c.query(`select count(*) filter (where expires_at > now())::int as live,
      count(*) filter (where status = 'in_progress' and locked_until > now())::int as in_progress,
      count(*) filter (where status = 'in_progress' and locked_until <= now() and expires_at > now())::int as abandoned,
      count(*) filter (where expires_at <= now())::int as expired
    from ballast.idempotency_keys`)).rows[0]);
  s.items.push({ name: 'idempotency_keys', state: 'ok', alerts: [], detail: `live ${r.live}, in progress ${r.in_progress}, lease expired ${r.abandoned}, expired (awaiting cleanup) ${r.expired}`, values: r });
  return s;
}

async function api(c: pg.Client, th: Thresholds): Promise<Section> {
  const s: Section = { section: 'API (last 5 minutes)', available: await exists(c, 'ballast.performance_metrics'), items: [] };
  if (!s.available) return s;
  // Weighted by sample_weight (REQUEST_TRACING_SAMPLE keeps every 5xx and slow request but only a share of
  // the rest): rates, the 5xx share and p99 are those of all requests, as the alerts' counters see them.
  const weighted = await c.query(`select 1 from pg_attribute where attrelid = 'ballast.performance_metrics'::regclass
    and attname = 'sample_weight' and not attisdropped`);
  const weight = weighted.rowCount ? 'sample_weight' : '1';
  const r = plain((await c.query(`with m as (
      select response_time_ms, status_code, ${weight}::float8 as w from ballast.performance_metrics
      where created_at > now() - interval '5 minutes'),
    c as (select response_time_ms, sum(w) over (order by response_time_ms rows unbounded preceding) as cum from m)
    select coalesce(round(sum(w)), 0)::int as requests,
      coalesce(round(sum(w) filter (where status_code >= 500)), 0)::int as errors,
      (select min(response_time_ms) from c where cum >= 0.99 * (select sum(w) from m))::float8 as p99_ms
    from m`)).rows[0]);
  const requests = Number(r.requests);
  const rate = requests / 300;
  const ratio = requests ? Number(r.errors) / requests : 0;
  const p99S = requests ? Number(r.p99_ms) / 1000 : 0;
  Object.assign(r, { rate_per_s: rate, error_ratio: ratio });
  s.items.push(item('requests', [
    ['BallastApiErrorRatio', ratio > th.apiMaxErrorRatio && rate > th.apiMinRequestRate, `5xx ${(ratio * 100).toFixed(2)}% > ${th.apiMaxErrorRatio * 100}% of ${rate.toFixed(2)} req/s`],
    ['BallastApiLatencyP99', p99S > th.apiMaxP99S, `p99 ${human(p99S)} > ${human(th.apiMaxP99S)}`],
  ], [], requests ? `${rate.toFixed(2)} req/s, 5xx ${(ratio * 100).toFixed(2)}%, p99 ${Math.round(Number(r.p99_ms))}ms`
    : 'no requests recorded (request tracing off or idle)', r));
  return s;
}

/** The database gauges (ballast.metrics_snapshot(), what /metrics exports), or none on a kit without it. */
async function gauges(c: pg.Client): Promise<Gauges> {
  const fn = (await c.query(`select to_regprocedure('ballast.metrics_snapshot()') as f`)).rows[0].f as string | null;
  if (fn === null) return new Gauges([]);
  if (!(await c.query(`select has_function_privilege($1, 'execute') as ok`, [fn])).rows[0].ok) {
    // Without the gauges no verdict could be given: an all-ok screen would lie.
    throw new Error(`this role (${(await c.query('select current_user as u')).rows[0].u}) may not execute ballast.metrics_snapshot(), whose gauges decide what fails: run status as the role that installed the kit`);
  }
  const { rows } = await c.query<{ metric: string; labels: Record<string, unknown>; value: number }>(
    'select metric, labels, value from ballast.metrics_snapshot()');
  return new Gauges(rows.map((r) => ({ ...r, value: Number(r.value) })));
}

/** Reads every section; `failing` counts the FAIL items. */
export async function status(url: string, thresholds: Thresholds = DEFAULT_THRESHOLDS): Promise<Status> {
  const c = new pg.Client({ connectionString: url, application_name: 'ballast status' });
  await c.connect();
  try {
    const sections: Section[] = [];
    const g = await gauges(c);
    for (const f of [worker, invalidation, matviews, cronJobs, cleanup, idempotency, api]) sections.push(await f(c, thresholds, g));
    const database = (await c.query('select current_database() as d')).rows[0].d as string;
    const failing = sections.reduce((n, s) => n + s.items.filter((i) => i.state === 'FAIL').length, 0);
    return { at: new Date().toISOString(), database, failing, sections };
  } finally {
    await c.end();
  }
}

/** The status as a table for a terminal (colours when asked). */
export function renderStatus(st: Status, colour: boolean): string {
  const paint = (state: string) => !colour ? state
    : state === 'FAIL' ? `\x1b[31m${state}\x1b[0m` : state === 'warn' ? `\x1b[33m${state}\x1b[0m` : `\x1b[32m${state}\x1b[0m`;
  const rows: string[][] = [];
  for (const s of st.sections) {
    if (!s.available) { rows.push([s.section, '-', 'n/a', 'not installed in this database']); continue; }
    if (s.items.length === 0) rows.push([s.section, '-', 'ok', 'none']);
    for (const i of s.items) rows.push([s.section, i.name, i.state, i.detail]);
  }
  // Pad before colouring so the escape codes do not skew the column widths.
  const table = formatTable(['section', 'item', 'state', 'detail'], rows);
  const at = table.indexOf('state');
  const lines = table.split('\n').map((l, n) => {
    if (n < 2 || l.length <= at) return l;
    const state = /^\S+/.exec(l.slice(at))?.[0] ?? '';
    return l.slice(0, at) + paint(state) + l.slice(at + state.length);
  });
  return `ballast status of ${st.database} at ${st.at}\n${lines.join('\n')}${st.failing ? `${st.failing} failing\n` : 'all ok\n'}`;
}

