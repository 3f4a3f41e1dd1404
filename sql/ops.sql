-- Operator's view (capability: ops). Gauges that ops/prometheus/alerts.yml and ops/grafana/ballast.json
-- need and the capability modules do not export themselves: per-view staleness, max delay and failures in
-- a row (from ballast.matview_status), scheduled cleanup runs missed (from ballast.cleanup_status).
-- The API's /metrics picks this function up by its name (ballast.metrics__*), through
-- ballast.metrics_snapshot(); each source is read only when it exists.

---- metrics__ops
---- Gauges for the alerts: MV staleness and max delay, refresh failures in a row, cleanup schedules missed.
create or replace function ballast.metrics__ops()
returns table (metric text, help text, labels jsonb, value double precision) as $$
begin
  if to_regclass('ballast.matview_status') is not null then
    return query
    select 'ballast_matview_staleness_seconds', 'Seconds since the oldest pending refresh request of a materialized view (0 when none)',
           jsonb_build_object('view', s.matview::text), coalesce(extract(epoch from s.staleness), 0)::float8
    from ballast.matview_status s
    union all
    select 'ballast_matview_max_delay_seconds', 'The max_delay a materialized view was registered with: how stale it may get',
           jsonb_build_object('view', s.matview::text), extract(epoch from s.max_delay)::float8
    from ballast.matview_status s where s.max_delay is not null
    union all
    select 'ballast_matview_consecutive_failures', 'Refresh attempts of a materialized view that failed in a row',
           jsonb_build_object('view', s.matview::text), coalesce(s.consecutive_failures, 0)::float8
    from ballast.matview_status s;
  end if;
  if to_regclass('ballast.cleanup_status') is not null then
    return query
    select 'ballast_cleanup_schedules_behind', 'Scheduled runs of an enabled cleanup policy missed since it last caught up',
           jsonb_build_object('policy', s.table_name), coalesce(s.schedules_behind, 0)::float8
    from ballast.cleanup_status s where s.enabled
    union all
    select 'ballast_cleanup_last_run_failed', 'Whether the last run of a cleanup policy ended in an error (1) or not (0)',
           jsonb_build_object('policy', s.table_name), (s.last_stopped_by is not distinct from 'error')::int::float8
    from ballast.cleanup_status s;
  end if;
end;
$$ language plpgsql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__ops() is
  E'Gauges for /metrics that the alerts in ops/prometheus need: materialized-view staleness, max delay and failures in a row; cleanup schedules missed and failed last runs.';
revoke all on function ballast.metrics__ops() from public;
