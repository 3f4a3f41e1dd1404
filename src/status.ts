// status(): the operator's one screen: invalidation queue, materialized views, pg_cron jobs, cleanup
// policies, idempotency keys and API traffic of the last 5 minutes. Every section reads a view or table
// only when it exists (to_regclass), so it works on any database that has some of the capabilities.
// `ballast status` prints it (exit 1 when any item is failing); `npm run status` is the same.
import pg from 'pg';
import { formatTable } from './table.ts';

export type Item = { name: string; state: 'ok' | 'warn' | 'FAIL'; detail: string; values: Record<string, unknown> };
export type Section = { section: string; available: boolean; items: Item[] };
export type Status = { at: string; database: string; failing: number; sections: Section[] };

/** When an item counts as failing. */
export type StatusThresholds = {
  /** an invalidation pending longer than this (seconds) */
  maxPendingAgeS: number;
  /** the 5-minute share of 5xx responses above this */
  maxErrorRatio: number;
  /** a cleanup policy this many scheduled runs behind */
  maxSchedulesBehind: number;
};
export const DEFAULT_THRESHOLDS: StatusThresholds = { maxPendingAgeS: 300, maxErrorRatio: 0.05, maxSchedulesBehind: 2 };

/** The thresholds from BALLAST_STATUS_MAX_PENDING_AGE_S, _MAX_ERROR_RATIO, _MAX_SCHEDULES_BEHIND; throws naming a bad one. */
export function thresholdsFromEnv(env: NodeJS.ProcessEnv = process.env): StatusThresholds {
  const num = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
    return n;
  };
  return {
    maxPendingAgeS: num('BALLAST_STATUS_MAX_PENDING_AGE_S', DEFAULT_THRESHOLDS.maxPendingAgeS),
    maxErrorRatio: num('BALLAST_STATUS_MAX_ERROR_RATIO', DEFAULT_THRESHOLDS.maxErrorRatio),
    maxSchedulesBehind: num('BALLAST_STATUS_MAX_SCHEDULES_BEHIND', DEFAULT_THRESHOLDS.maxSchedulesBehind),
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

async function invalidation(c: pg.Client, th: StatusThresholds): Promise<Section> {
  const s: Section = { section: 'invalidation queue', available: await exists(c, 'ballast.cache_invalidation_stats'), items: [] };
  if (!s.available) return s;
  const row = plain((await c.query('select * from ballast.cache_invalidation_stats')).rows[0] ?? {});
  const dead = Number(row.dead ?? 0);
  const age = row.oldest_pending_age as number | null;
  const problems: string[] = [];
  if (dead > 0) problems.push(`${dead} dead letter(s)`);
  if (age !== null && age > th.maxPendingAgeS) problems.push(`oldest pending ${human(age)} > ${human(th.maxPendingAgeS)}`);
  s.items.push({
    name: 'cache_invalidation_queue',
    state: problems.length ? 'FAIL' : 'ok',
    detail: problems.length ? problems.join('; ') : `pending ${row.pending ?? 0}, leased ${row.leased ?? 0}, retried ${row.retried ?? 0}, dead ${dead}, oldest ${human(age)}`,
    values: row,
  });
  return s;
}

async function matviews(c: pg.Client, _th: StatusThresholds): Promise<Section> {
  const s: Section = { section: 'materialized views', available: await exists(c, 'ballast.matview_status'), items: [] };
  if (!s.available) return s;
  const rows = (await c.query('select matview::text as name, * from ballast.matview_status order by 1')).rows.map(plain);
  for (const r of rows) {
    const staleness = r.staleness as number | null;
    const maxDelay = r.max_delay as number | null;
    const problems: string[] = [];
    if (r.populated === false) problems.push('not populated');
    if (r.last_attempt_ok === false) problems.push(`last refresh failed: ${String(r.last_error ?? '').slice(0, 80)}`);
    if (Number(r.consecutive_failures ?? 0) > 1) problems.push(`${r.consecutive_failures} failures in a row`);
    if (staleness !== null && maxDelay !== null && maxDelay > 0 && staleness > 2 * maxDelay) problems.push(`stale ${human(staleness)} > 2 x max_delay ${human(maxDelay)}`);
    s.items.push({
      name: String(r.name),
      state: problems.length ? 'FAIL' : 'ok',
      detail: problems.length ? problems.join('; ')
        : `pending since ${r.pending_since ? ago(r.pending_since) : '-'}, last refresh ${ago(r.last_refresh_at)}, staleness ${human(staleness)}`,
      values: r,
    });
  }
  return s;
}

async function cronJobs(c: pg.Client, _th: StatusThresholds): Promise<Section> {
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
    const failed = r.status === 'failed';
    s.items.push({
      name: String(r.name),
      state: failed ? 'FAIL' : r.active === false ? 'warn' : 'ok',
      detail: failed ? `last run failed ${ago(r.start_time)}: ${String(r.return_message ?? '').slice(0, 80)}`
        : `${r.schedule}${r.active === false ? ' (inactive)' : ''}, last run ${ago(r.start_time)}${r.status ? ` ${r.status}` : ''}${r.duration_s != null ? ` in ${human(Number(r.duration_s))}` : ''}`,
      values: r,
    });
  }
  return s;
}

async function cleanup(c: pg.Client, th: StatusThresholds): Promise<Section> {
  const s: Section = { section: 'cleanup policies', available: await exists(c, 'ballast.cleanup_status'), items: [] };
  if (!s.available) return s;
  const rows = (await c.query('select * from ballast.cleanup_status order by table_name')).rows.map(plain);
  for (const r of rows) {
    const problems: string[] = [];
    if (r.last_stopped_by === 'error' || r.last_error) problems.push(`last run failed: ${String(r.last_error ?? '').slice(0, 80)}`);
    if (r.enabled !== false && Number(r.schedules_behind ?? 0) >= th.maxSchedulesBehind) problems.push(`${r.schedules_behind} scheduled runs missed`);
    s.items.push({
      name: String(r.table_name),
      state: problems.length ? 'FAIL' : r.enabled === false ? 'warn' : 'ok',
      detail: problems.length ? problems.join('; ')
        : `${r.enabled === false ? 'disabled, ' : ''}last run ${ago(r.last_run_at)}${r.last_rows_deleted != null ? ` (${r.last_rows_deleted} deleted)` : ''}, rows behind ~${r.rows_behind ?? '?'}`,
      values: r,
    });
  }
  return s;
}

async function idempotency(c: pg.Client, _th: StatusThresholds): Promise<Section> {
  const s: Section = { section: 'idempotency keys', available: await exists(c, 'ballast.idempotency_keys'), items: [] };
  if (!s.available) return s;
  const r = plain((await c.query(`select count(*) filter (where expires_at > now())::int as live,
      count(*) filter (where status = 'in_progress' and locked_until > now())::int as in_progress,
      count(*) filter (where status = 'in_progress' and locked_until <= now() and expires_at > now())::int as abandoned,
      count(*) filter (where expires_at <= now())::int as expired
    from ballast.idempotency_keys`)).rows[0]);
  s.items.push({ name: 'idempotency_keys', state: 'ok', detail: `live ${r.live}, in progress ${r.in_progress}, lease expired ${r.abandoned}, expired (awaiting cleanup) ${r.expired}`, values: r });
  return s;
}

async function api(c: pg.Client, th: StatusThresholds): Promise<Section> {
  const s: Section = { section: 'API (last 5 minutes)', available: await exists(c, 'ballast.performance_metrics'), items: [] };
  if (!s.available) return s;
  const r = plain((await c.query(`select count(*)::int as requests,
      count(*) filter (where status_code >= 500)::int as errors,
      (percentile_cont(0.99) within group (order by response_time_ms))::float8 as p99_ms
    from ballast.performance_metrics where created_at > now() - interval '5 minutes'`)).rows[0]);
  const requests = Number(r.requests);
  const ratio = requests ? Number(r.errors) / requests : 0;
  Object.assign(r, { rate_per_s: requests / 300, error_ratio: ratio });
  s.items.push({
    name: 'requests',
    state: requests && ratio > th.maxErrorRatio ? 'FAIL' : 'ok',
    detail: requests ? `${(requests / 300).toFixed(2)} req/s, 5xx ${(ratio * 100).toFixed(2)}%, p99 ${Math.round(Number(r.p99_ms))}ms`
      : 'no requests recorded (request tracing off or idle)',
    values: r,
  });
  return s;
}

/** Reads every section; `failing` counts the FAIL items. */
export async function status(url: string, thresholds: StatusThresholds = DEFAULT_THRESHOLDS): Promise<Status> {
  const c = new pg.Client({ connectionString: url, application_name: 'ballast status' });
  await c.connect();
  try {
    const sections: Section[] = [];
    for (const f of [invalidation, matviews, cronJobs, cleanup, idempotency, api]) sections.push(await f(c, thresholds));
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

