-- The API server's SQL (capability: api): batched request tracing and its rollups, the ballast_report_error
-- job queueing, and the database gauges /metrics reads on scrape (rate limiting: sql/rate_limit.sql).
-- The API connects as ballast_authenticator (NOINHERIT) and calls these SECURITY DEFINER functions
-- directly, outside any visitor's transaction; the visitor roles get none of them.

select ballast.owner_only_policy('ballast.performance_metrics');

---- record_performance_metrics
---- Inserts a batch of request rows (a JSON array) into ballast.performance_metrics with one statement.
create or replace function ballast.record_performance_metrics(rows jsonb)
returns int as $$
declare
  n int;
begin
  if rows is null or jsonb_typeof(rows) <> 'array' then
    raise exception using errcode = '22023',
      message = format('record_performance_metrics: rows must be a JSON array, got %s', coalesce(jsonb_typeof(rows), 'null'));
  end if;
  if jsonb_array_length(rows) > 10000 then
    raise exception using errcode = '22023',
      message = format('record_performance_metrics: at most 10000 rows per call, got %s', jsonb_array_length(rows)),
      hint = 'Flush more often or in smaller batches.';
  end if;
  insert into ballast.performance_metrics
    (created_at, endpoint, method, status_code, response_time_ms, request_id, trace_id, operation_name, operation_type, user_id, org_id,
     sample_weight)
  select r.created_at, r.endpoint, r.method, r.status_code, r.response_time_ms, r.request_id, r.trace_id, r.operation_name,
         r.operation_type, r.user_id, r.org_id, coalesce(r.sample_weight, 1)
  from jsonb_to_recordset(rows) as r(created_at timestamptz, endpoint text, method text, status_code smallint,
    response_time_ms real, request_id text, trace_id text, operation_name text, operation_type text, user_id uuid, org_id uuid,
    sample_weight real);
  get diagnostics n = row_count;
  return n;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.record_performance_metrics(jsonb) is
  E'Insert up to 10000 request rows ([{created_at, endpoint, method, status_code, response_time_ms, request_id, trace_id, operation_name, operation_type, user_id, org_id, sample_weight (default 1)}]) into ballast.performance_metrics.';
revoke all on function ballast.record_performance_metrics(jsonb) from public;
grant execute on function ballast.record_performance_metrics(jsonb) to ballast_authenticator;

---- enqueue_error_reports
---- Queues one graphile-worker ballast_report_error job per report (a JSON array of objects).
create or replace function ballast.enqueue_error_reports(reports jsonb)
returns int as $$
declare
  n int;
  s constant name := ballast.worker_schema();  -- ballast_worker, or the app's own runner's schema
begin
  if reports is null or jsonb_typeof(reports) <> 'array' then
    raise exception using errcode = '22023',
      message = format('enqueue_error_reports: reports must be a JSON array, got %s', coalesce(jsonb_typeof(reports), 'null'));
  end if;
  if jsonb_array_length(reports) > 1000 then
    raise exception using errcode = '22023',
      message = format('enqueue_error_reports: at most 1000 reports per call, got %s', jsonb_array_length(reports));
  end if;
  if exists (select 1 from jsonb_array_elements(reports) r where jsonb_typeof(r) <> 'object') then
    raise exception using errcode = '22023', message = 'enqueue_error_reports: every report must be a JSON object';
  end if;
  if to_regclass(format('%I.jobs', s)) is null then
    raise exception using errcode = '55000',
      message = format('enqueue_error_reports: no graphile-worker in schema %I (setting worker_schema)', s),
      hint = 'Start the worker once (graphile-worker installs its schema), or select ballast.configure(''worker_schema'', ...) to name the schema your runner uses.';
  end if;
  execute format('select count(*)::int from %1$I.add_jobs(array(
                    select row($2, r::json, null, null, 10, null, null, null)::%1$I.job_spec
                    from jsonb_array_elements($1) r))', s)
    into n using reports, 'ballast_report_error';
  return n;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.enqueue_error_reports(jsonb) is
  E'Queue a ballast_report_error graphile-worker job per report (JSON objects, at most 1000 per call) in the schema of setting worker_schema; the API calls it for 5xx responses.';
revoke all on function ballast.enqueue_error_reports(jsonb) from public;
grant execute on function ballast.enqueue_error_reports(jsonb) to ballast_authenticator;

-- Rollups of performance_metrics. Created once and kept (not dropped and recreated like plain views):
-- the refresh-queue capability registers them by regclass, and they hold data. A change to their
-- definition needs a migration that drops them. Refreshed through the refresh queue (registered below,
-- with performance_metrics as their source).
create materialized view if not exists ballast.api_metrics_5m as
select date_bin('5 minutes', m.created_at, timestamptz '2000-01-01 00:00:00+00') as bucket_start,
       m.endpoint, m.method, coalesce(m.operation_name, '') as operation_name,
       count(*) as request_count,
       count(*) filter (where m.status_code >= 500) as error_count,
       count(*) filter (where m.status_code between 400 and 499) as client_error_count,
       percentile_cont(0.5) within group (order by m.response_time_ms) as p50_ms,
       percentile_cont(0.95) within group (order by m.response_time_ms) as p95_ms,
       percentile_cont(0.99) within group (order by m.response_time_ms) as p99_ms
from ballast.performance_metrics m
where m.created_at >= now() - interval '2 days'
group by 1, 2, 3, 4;
comment on materialized view ballast.api_metrics_5m is
  E'API requests per 5 minutes, endpoint, method and GraphQL operation over the last 2 days: count, errors (5xx), client errors (4xx), p50/p95/p99 ms.';
-- Not "create unique index if not exists": that locks the view SHARE before it looks, so a deploy would
-- wait behind a running REFRESH ... CONCURRENTLY (sql/kit.sql: re-applying takes no lock when unchanged).
do $$
begin
  if to_regclass('ballast.api_metrics_5m_key') is null then
    create unique index api_metrics_5m_key on ballast.api_metrics_5m (bucket_start, endpoint, method, operation_name);
  end if;
end
$$;

create materialized view if not exists ballast.api_metrics_hourly as
select date_trunc('hour', m.created_at) as bucket_start,
       m.endpoint, m.method, coalesce(m.operation_name, '') as operation_name,
       count(*) as request_count,
       count(*) filter (where m.status_code >= 500) as error_count,
       count(*) filter (where m.status_code between 400 and 499) as client_error_count,
       percentile_cont(0.5) within group (order by m.response_time_ms) as p50_ms,
       percentile_cont(0.95) within group (order by m.response_time_ms) as p95_ms,
       percentile_cont(0.99) within group (order by m.response_time_ms) as p99_ms
from ballast.performance_metrics m
where m.created_at >= now() - interval '8 days'
group by 1, 2, 3, 4;
comment on materialized view ballast.api_metrics_hourly is
  E'API requests per hour, endpoint, method and GraphQL operation over the last 8 days: count, errors (5xx), client errors (4xx), p50/p95/p99 ms.';
do $$
begin
  if to_regclass('ballast.api_metrics_hourly_key') is null then
    create unique index api_metrics_hourly_key on ballast.api_metrics_hourly (bucket_start, endpoint, method, operation_name);
  end if;
end
$$;

-- The rollups follow the request log through the refresh queue: a minute after tracing writes stop, and
-- at the latest 5 minutes (hourly: 1 hour) after the first unrefreshed write.
select ballast.register_matview('ballast.api_metrics_5m', array['ballast.performance_metrics']::regclass[],
                                debounce => '1 minute', max_delay => '5 minutes');
select ballast.register_matview('ballast.api_metrics_hourly', array['ballast.performance_metrics']::regclass[],
                                debounce => '5 minutes', max_delay => '1 hour');

-- Database gauges for /metrics. Each capability contributes a function ballast.metrics__<capability>()
-- returning (metric, help, labels, value); metrics_snapshot() runs them all, each in its own
-- subtransaction, so one that fails (a table changed shape) reports ballast_db_metrics_source_up 0 and
-- the others still answer. The worker's and the API's own are here; each capability's is in its own file
-- (metrics__refresh_queue, metrics__cache_invalidation, metrics__idempotency, metrics__cleanup).

---- metrics__worker
---- ballast's graphile-worker jobs (pending, oldest pending age, dead, running per task) and worker heartbeats.
create or replace function ballast.metrics__worker()
returns table (metric text, help text, labels jsonb, value double precision) as $$
declare
  s constant name := ballast.worker_schema();
begin
  -- graphile-worker's public view, never its _private_ tables. Only ballast's tasks (ballast_*): the
  -- schema may be the app's own runner's, whose other tasks are not ballast's to report.
  if to_regclass(format('%I.jobs', s)) is not null then
    return query execute format($q$
    with per_task as (
      select j.task_identifier as identifier,
             count(*) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now()) as pending,
             extract(epoch from now() - min(j.run_at) filter (where j.locked_at is null and j.attempts < j.max_attempts and j.run_at <= now())) as oldest,
             count(*) filter (where j.attempts >= j.max_attempts) as dead,
             count(*) filter (where j.locked_at is not null) as running
      from %I.jobs j
      where starts_with(j.task_identifier, 'ballast_')
      group by j.task_identifier
    )
    select 'ballast_worker_jobs_pending', 'graphile-worker jobs due and not yet taken, by task', jsonb_build_object('task', identifier), pending::float8 from per_task
    union all
    select 'ballast_worker_jobs_oldest_pending_seconds', 'Age of the oldest due graphile-worker job, by task (0 when none)', jsonb_build_object('task', identifier), coalesce(oldest, 0)::float8 from per_task
    union all
    select 'ballast_worker_jobs_dead', 'graphile-worker jobs that used up their attempts (dead letters), by task', jsonb_build_object('task', identifier), dead::float8 from per_task
    union all
    select 'ballast_worker_jobs_running', 'graphile-worker jobs locked by a worker, by task', jsonb_build_object('task', identifier), running::float8 from per_task
    $q$, s);
  end if;
  if to_regclass('ballast.worker_heartbeats') is not null then
    return query
    select 'ballast_worker_heartbeat_age_seconds', 'Seconds since the most recent worker heartbeat (-1 when none)', '{}'::jsonb,
           coalesce(extract(epoch from now() - max(h.last_seen_at)), -1)::float8
    from ballast.worker_heartbeats h;
  end if;
end;
$$ language plpgsql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__worker() is
  E'Gauges for /metrics: queue depth, oldest pending age, dead jobs, running jobs per ballast task (ballast_*) with at least one job, in the graphile-worker schema of setting worker_schema; worker heartbeat age.';

---- metrics__api
---- The API's own tables: rate-limit buckets, newest traced request, rollup freshness.
create or replace function ballast.metrics__api()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_rate_limit_buckets', 'Rate-limit buckets not yet full again', '{}'::jsonb,
         (select count(*) from ballast.rate_limit_buckets)::float8
  union all
  select 'ballast_performance_metrics_newest_age_seconds', 'Seconds since the newest traced request (-1 when none)', '{}'::jsonb,
         coalesce(extract(epoch from now() - (select max(created_at) from ballast.performance_metrics)), -1)::float8
  union all
  select 'ballast_api_rollup_newest_bucket_age_seconds', 'Seconds since the start of the newest bucket of an API rollup view (-1 when empty)',
         jsonb_build_object('view', v.name), coalesce(extract(epoch from now() - v.newest), -1)::float8
  from (select 'ballast.api_metrics_5m' as name, (select max(bucket_start) from ballast.api_metrics_5m) as newest
        union all
        select 'ballast.api_metrics_hourly', (select max(bucket_start) from ballast.api_metrics_hourly)) v
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__api() is
  E'Gauges for /metrics: rate-limit buckets, age of the newest traced request, freshness of api_metrics_5m/api_metrics_hourly.';

---- metrics_snapshot
---- Every ballast.metrics__*() gauge in one result, plus whether each source answered.
create or replace function ballast.metrics_snapshot()
returns table (metric text, help text, labels jsonb, value double precision) as $$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::regprocedure from pg_proc p
    where p.pronamespace = 'ballast'::regnamespace and p.proname like 'metrics\_\_%' and p.pronargs = 0
    order by p.proname
  loop
    begin
      return query execute format('select metric, help, labels, value from %s', fn);
      return query select 'ballast_db_metrics_source_up'::text, 'Whether a ballast.metrics__*() function answered (1) or failed (0)'::text,
                          jsonb_build_object('source', fn::text), 1::float8;
    exception when others then
      return query select 'ballast_db_metrics_source_up'::text, 'Whether a ballast.metrics__*() function answered (1) or failed (0)'::text,
                          jsonb_build_object('source', fn::text), 0::float8;
    end;
  end loop;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics_snapshot() is
  E'All database gauges for the API''s /metrics: rows (metric, help, labels, value) from every ballast.metrics__*() function.';
revoke all on function ballast.metrics_snapshot() from public;
grant execute on function ballast.metrics_snapshot() to ballast_authenticator;

---- verify__api
---- The API capability's checks: its SECURITY DEFINER functions are the authenticator's only.
create or replace function ballast.verify__api()
returns table (check_name text, ok boolean, detail text) as $$
  select format('api: only the authenticator may run %s', f),
         has_function_privilege('ballast_authenticator', f, 'execute')
           and not has_function_privilege('ballast_member', f, 'execute')
           and not has_function_privilege('ballast_admin', f, 'execute')
           and not has_function_privilege('ballast_anonymous', f, 'execute'),
         format('execute: authenticator=%s, anonymous=%s, member=%s, admin=%s',
                has_function_privilege('ballast_authenticator', f, 'execute'),
                has_function_privilege('ballast_anonymous', f, 'execute'),
                has_function_privilege('ballast_member', f, 'execute'),
                has_function_privilege('ballast_admin', f, 'execute'))
  from unnest(array['ballast.record_performance_metrics(jsonb)', 'ballast.enqueue_error_reports(jsonb)',
                    'ballast.metrics_snapshot()', 'ballast.rate_limit_take(text,int,numeric,int)']) f
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.verify__api() is
  E'API checks for verify_migration_success(): its SECURITY DEFINER functions are granted to the authenticator only.';
