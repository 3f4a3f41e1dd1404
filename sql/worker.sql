-- ballast's worker process, as its own login role ballast_worker_login: what it may call, and nothing else.
-- The worker talks to external HTTP and Redis; if it is ever subverted it should hold no more than its job
-- needs. So it logs in as ballast_worker_login (NOINHERIT, member of nothing, created by the installer) and
-- reaches the kit only through the SECURITY DEFINER functions granted here: claim, ack and fail cache
-- invalidations, record its heartbeat, read the refresh log's report, read worker_schema(). No kit table, no
-- DDL, no user schema. Its rights in graphile-worker's schema ballast_worker (its jobs) are given after
-- graphile-worker's migrations by the installer (src/install_sql.ts WORKER_SCHEMA_ACCESS_SQL).
-- test-sql/worker.sql checks the functions; test/worker.test.ts runs the real worker as this role.

---- record_worker_heartbeat
---- Records that one worker process is alive: upserts its row of ballast.worker_heartbeats.
create or replace function ballast.record_worker_heartbeat(worker_id text, hostname text, pid int)
returns void as $$
begin
  if worker_id is null or length(worker_id) not between 1 and 200 or worker_id ~ '[[:cntrl:]]' then
    raise exception using errcode = '22023',
      message = format('record_worker_heartbeat: worker_id must be 1 to 200 printable characters, got %s',
                       coalesce(quote_literal(left(worker_id, 60)), 'null')),
      hint = 'graphile-worker''s id of the worker process (helpers.job.locked_by).';
  end if;
  if hostname is null or length(hostname) not between 1 and 255 or hostname ~ '[[:cntrl:]]' then
    raise exception using errcode = '22023',
      message = format('record_worker_heartbeat: hostname must be 1 to 255 printable characters, got %s',
                       coalesce(quote_literal(left(hostname, 60)), 'null')),
      hint = 'os.hostname() of the machine the worker runs on.';
  end if;
  if pid is null or pid < 1 then
    raise exception using errcode = '22023',
      message = format('record_worker_heartbeat: pid must be a positive process id, got %s', coalesce(pid::text, 'null'));
  end if;
  insert into ballast.worker_heartbeats as h (worker_id, hostname, pid, last_seen_at)
  values (record_worker_heartbeat.worker_id, record_worker_heartbeat.hostname, record_worker_heartbeat.pid, now())
  on conflict on constraint worker_heartbeats_pkey do update
    set hostname = excluded.hostname, pid = excluded.pid, last_seen_at = excluded.last_seen_at;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.record_worker_heartbeat(text, text, int) is
  E'Record that a worker process is alive: insert or refresh its row of ballast.worker_heartbeats (worker_id, hostname, pid, last_seen_at = now()). The worker''s ballast_heartbeat task calls it as ballast_worker_login. 22023 for an empty, oversize or non-printable worker_id or hostname, or a pid below 1.';

---- recent_matview_refreshes
---- The refreshes of registered materialized views that finished in (since, until], oldest first.
create or replace function ballast.recent_matview_refreshes(since timestamptz, until timestamptz)
returns table (matview text, mode text, ok boolean, error text, detail text, requests int, ms int) as $$
begin
  if since is null or until is null or not isfinite(since) or not isfinite(until) or since >= until
     or until - since > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('recent_matview_refreshes: since and until must be finite times with since < until at most 1 day apart, got %s and %s',
                       coalesce(since::text, 'null'), coalesce(until::text, 'null')),
      hint = 'The worker asks for the minute before its scheduled run: since = until - 1 minute.';
  end if;
  return query
    select ballast.relation_name(l.matview), l.mode, l.ok, l.error, l.detail, l.requests,
           round(extract(epoch from l.duration) * 1000)::int
    from ballast.mv_refresh_log l
    where l.finished_at > since and l.finished_at <= until
    order by l.finished_at, l.id;
end;
$$ language plpgsql stable security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.recent_matview_refreshes(timestamptz, timestamptz) is
  E'The refreshes of registered materialized views (ballast.mv_refresh_log) that finished after since and at or before until, oldest first: view name, mode, ok, error, detail, queue rows claimed, duration in ms. The worker''s ballast_log_matview_refreshes task calls it as ballast_worker_login. 22023 unless since and until are finite, since < until, at most 1 day apart.';

---- pending_matview_refreshes
---- Registered materialized views with a refresh pending, the longest-waiting first.
create or replace function ballast.pending_matview_refreshes()
returns table (matview text, pending_since timestamptz, consecutive_failures int, next_attempt_at timestamptz) as $$
  select ballast.relation_name(s.matview), s.pending_since, s.consecutive_failures::int, s.next_attempt_at
  from ballast.matview_status s
  where s.pending_since is not null
  order by s.pending_since
$$ language sql stable security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.pending_matview_refreshes() is
  E'Registered materialized views with a refresh pending (ballast.matview_status): view name, pending since, consecutive failures, next attempt; the longest-waiting first. The worker''s ballast_log_matview_refreshes task calls it as ballast_worker_login.';

-- The worker's login role: these, and nothing else of the kit's (privileges.sql takes PUBLIC's EXECUTE
-- from every kit function; the functions below are SECURITY DEFINER, so it needs no table rights).
grant execute on function
  ballast.drain_cache_invalidation_queue(int, int),
  ballast.ack_cache_invalidations(bigint[], int[]),
  ballast.fail_cache_invalidations(bigint[], int[], text, int, int, boolean),
  ballast.worker_schema(),
  ballast.record_worker_heartbeat(text, text, int),
  ballast.recent_matview_refreshes(timestamptz, timestamptz),
  ballast.pending_matview_refreshes(),
  ballast.audit_seals_between(timestamptz, timestamptz)
to ballast_worker_login;
