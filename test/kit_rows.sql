-- A row in every table of schema ballast, written directly (as a superuser), so an upgrade test can show
-- the rows survive. test/install.test.ts fails when a kit table has no row after this script: a new table
-- needs its row here. No kit function is called, so no object is created beyond the rows themselves.
insert into ballast.created_roles (role_name) values ('ballast_upgrade_probe_role');
insert into ballast.settings (name, value) values ('exposed_schemas', '["public"]') on conflict do nothing;
insert into ballast.verify_exemptions (check_name, object_name, reason) values ('rls', 'public.upgrade_probe', 'kept across the upgrade test');
insert into ballast.worker_heartbeats (worker_id, hostname, pid) values ('upgrade-probe', 'probe-host', 4242);
insert into ballast.cleanup_runs (policy, table_name, cutoff, finished_at, stopped_by, rows_deleted, batches)
  values ('ballast.performance_metrics'::regclass, 'ballast.performance_metrics', now(), now(), 'done', 7, 1);
insert into ballast.audited_tables (table_name, pk_columns) values ('public.upgrade_probe', '{id}');
insert into ballast.audit_log (table_name, op, record_id, new_values, actor_role, txid)
  values ('public.upgrade_probe', 'INSERT', gen_random_uuid(), '{"id": 1}', 'postgres', txid_current());
insert into ballast.idempotency_keys (scope, key, request_hash, status, status_code, response_body, expires_at)
  values ('sub:probe', 'upgrade-key', 'hash', 'completed', 200, '{"ok":true}', now() + interval '1 day');
insert into ballast.registered_matviews (matview, depends_on, debounce, max_delay, request_flag)
  values ('ballast.api_metrics_5m'::regclass, array['ballast.performance_metrics'::regclass], '1 second', '1 minute', 'ballast.audit_log_id_seq'::regclass)
  on conflict do nothing;
insert into ballast.materialized_view_refresh_queue (matview) values ('ballast.api_metrics_5m'::regclass);
insert into ballast.mv_refresh_log (matview, started_at, finished_at, mode, ok) values ('ballast.api_metrics_5m'::regclass, now(), now(), 'plain', true);
insert into ballast.cache_invalidation_inbox (tags) values ('{upgrade:inbox}');
insert into ballast.cache_invalidation_queue (tag) values ('upgrade:queue');
insert into ballast.cache_invalidation_dead_letters (id, tag, enqueued_at, retry_count, attempts) values (-1, 'upgrade:dead', now(), 10, 10);
insert into ballast.cache_invalidation_triggers (tbl, tags, collapse_above, function_name)
  values ('ballast.worker_heartbeats'::regclass, '{probe}', 1000, 'upgrade_probe_fn');
insert into ballast.rate_limit_buckets (bucket, tokens, granted, updated_at, full_at) values ('query:probe', 1, true, now(), now() + interval '1 hour');
insert into ballast.performance_metrics (endpoint, method, status_code, response_time_ms, request_id) values ('/graphql', 'POST', 200, 1.5, 'upgrade-probe');
-- Tables and shapes of other releases, when the release under test has them: before 0.2.0 an UPDATE's audit
-- row held both full images and changed_columns (migration 000002 rewrites it to the changed columns only);
-- 0.2.0 added audit_seals.
do $$
begin
  if exists (select from pg_attribute where attrelid = 'ballast.audit_log'::regclass and attname = 'changed_columns' and not attisdropped) then
    execute $q$insert into ballast.audit_log (table_name, op, record_id, old_values, new_values, changed_columns, actor_role, txid)
               values ('public.upgrade_probe', 'UPDATE', gen_random_uuid(), '{"id": 1, "v": 1}', '{"id": 1, "v": 2}', '{v}', 'postgres', txid_current())$q$;
  end if;
  if to_regclass('ballast.audit_seals') is not null then
    execute $q$insert into ballast.audit_seals (kind, row_count, ids, digests, hash) values ('prune', 0, '{}', '{}', sha256('upgrade-probe'))$q$;
  end if;
end
$$;
