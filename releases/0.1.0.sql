-- ballast 0.1.0: install or upgrade schema ballast in one transaction.
--   psql -v ON_ERROR_STOP=1 [-v ballast_authenticator_password=...] -d <database> -f ballast.sql
-- Run it as the role that should own the kit's objects. It refuses a database whose kit is newer.
\set ON_ERROR_STOP on
select pg_advisory_lock(hashtext('ballast install'));
begin;
do $ballast$
declare
  newest int;
  installed text;
begin
  if to_regclass('ballast.migrations') is null then
    return;
  end if;
  select max(id) into newest from ballast.migrations;
  if to_regclass('ballast.installs') is not null then
    select version into installed from ballast.installs order by id desc limit 1;
  end if;
  if newest > 1 or string_to_array(split_part(installed, '-', 1), '.')::int[] > array[0, 1, 0] then
    raise exception using errcode = '55000',
      message = format('this database has ballast %s (migration %s), newer than this script (ballast 0.1.0, migrations up to 1); nothing was changed', installed, newest);
  end if;
end
$ballast$;

do $ballast$
begin
  if to_regnamespace('ballast') is not null and to_regclass('ballast.migrations') is null then
    raise exception using errcode = '42P06',
      message = 'schema ballast exists but was not made by the ballast installer (it has no ballast.migrations table)',
      hint = 'Rename or drop that schema yourself if it is not needed; ballast will not install over it.';
  end if;
end
$ballast$;
create schema if not exists ballast;
comment on schema ballast is 'ballast: production safety rails (queues, idempotency, audit, cleanup, checks). Installed by the ballast package; ballast uninstall removes it.';
create table if not exists ballast.migrations (
  id int primary key,                          -- the number of migrations/NNNNNN-name.sql
  name text not null,                          -- its file name without .sql
  version text not null,                       -- the ballast version that applied it
  applied_at timestamptz not null default now()
);
comment on table ballast.migrations is
  E'The kit''s migrations applied here (migrations/NNNNNN-name.sql of the ballast package), one row each; inserted before the migration runs, so two installers collide on it.';


-- migration 000001-ballast
select not exists (select 1 from ballast.migrations where id = 1) as ballast_apply_1 \gset
\if :ballast_apply_1
insert into ballast.migrations (id, name, version) values (1, '000001-ballast', '0.1.0');
-- ballast 0.1.0, migration 000001: the kit's tables, in schema ballast (created by the installer).
-- Tables and their data live in this numbered chain; functions, views, triggers, policies and pg_cron
-- jobs live in sql/ and are re-applied by the installer whenever they change (docs/ARCHITECTURE.md).
-- A released migration is never edited: a change is a new file with the next number.

-- The installer's record: one row per install or upgrade that changed something (ballast.version() reads
-- the newest), and the roles it created (uninstall --roles drops exactly those).
create table ballast.installs (
  id bigint generated always as identity primary key,
  version text not null,                       -- package.json version of the installer
  definitions_sha1 text not null,              -- digest of sql/ as applied: re-applied only when it changes
  installed_at timestamptz not null default now(),
  installed_by name not null default current_user
);
comment on table ballast.installs is
  E'Each install or upgrade of the kit that changed something: version, digest of the definitions applied, when, by whom.';

create table ballast.created_roles (
  role_name name primary key,                  -- a role the installer created because it was missing
  created_at timestamptz not null default now()
);
comment on table ballast.created_roles is
  E'Roles the ballast installer created (it never alters roles that existed); ballast uninstall --roles drops these.';


create table ballast.settings (
  name text primary key,                       -- one of ballast.setting_defaults()
  value jsonb not null,                        -- validated by ballast.configure()
  updated_at timestamptz not null default now()
);
comment on table ballast.settings is
  E'Settings changed from their defaults with ballast.configure(name, value); ballast.setting_defaults() lists every setting.';

-- verify_migration_success(): exemptions, and the worker heartbeats it reads
create table ballast.verify_exemptions (
  check_name text not null,           -- the verify_migration_success() check it applies to, e.g. 'rls'
  object_name text not null,          -- a qualified name as regclass prints it, e.g. 'app_public.legacy'
  reason text not null check (length(trim(reason)) >= 10), -- why, in words a reviewer can judge
  created_at timestamptz not null default now(),
  primary key (check_name, object_name)
);
comment on table ballast.verify_exemptions is
  E'Objects deliberately exempt from a verify_migration_success() check, each with its reason.';
alter table ballast.verify_exemptions enable row level security;
alter table ballast.verify_exemptions force row level security;

create table ballast.worker_heartbeats (
  worker_id text primary key,          -- graphile-worker's id for one worker process
  hostname text not null,
  pid int not null,
  last_seen_at timestamptz not null default now()
);
comment on table ballast.worker_heartbeats is
  E'One row per worker process, refreshed by its heartbeat task; how an operator sees workers are alive.';

-- Batched cleanup with retention policies (capability: cleanup).
-- The two tables; the functions, triggers, view, built-in policies and pg_cron jobs live in sql/cleanup.sql.

create table ballast.cleanup_policies (
  tbl regclass primary key,                   -- the table this policy cleans (one policy per table)
  time_column name not null,                  -- rows with time_column < now() - retain are past retention
  retain interval not null check (retain > interval '0'),
  batch_size int not null default 1000 check (batch_size between 1 and 100000), -- rows per transaction
  schedule text not null default '17 * * * *', -- pg_cron schedule (UTC) of this policy's job
  extra_condition text,                       -- a boolean SQL expression on tbl, ANDed with the time filter
  max_runtime interval not null default '50 seconds' -- how long one scheduled run may take
    check (max_runtime > interval '0' and max_runtime <= interval '1 day'),
  batch_pause interval not null default '60 milliseconds' -- sleep between batches: leaves writers CPU, I/O, WAL
    check (batch_pause >= interval '0' and batch_pause <= interval '1 minute'),
  enabled boolean not null default true,      -- false: no pg_cron job, run_cleanup() skips it unless named
  builtin boolean not null default false,     -- installed by sql/cleanup.sql (adjust it freely; it is kept)
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table ballast.cleanup_policies is
  E'Retention policies: which rows of which table run_cleanup() deletes, in batches, on which pg_cron schedule.';

create table ballast.cleanup_runs (
  id bigint generated always as identity primary key,
  policy regclass not null,                   -- the policy's table (policies are keyed by table)
  table_name text not null,                   -- its qualified name at run time, readable after a drop
  started_at timestamptz not null default now(),
  finished_at timestamptz,                    -- null while the run is going on
  cutoff timestamptz not null,                -- rows with time_column < cutoff were eligible
  rows_deleted bigint not null default 0,
  batches int not null default 0,             -- committed batches that deleted at least one row
  stopped_by text check (stopped_by in ('done', 'max_runtime', 'error')), -- null while running
  error text,                                 -- SQLSTATE and message when stopped_by = 'error'
  check ((finished_at is null) = (stopped_by is null))
);
comment on table ballast.cleanup_runs is
  E'One row per run_cleanup() pass over one policy: what it deleted, in how many batches, and why it stopped.';
create index cleanup_runs_started_at_idx on ballast.cleanup_runs (started_at);
create index cleanup_runs_policy_started_at_idx on ballast.cleanup_runs (policy, started_at desc);

alter table ballast.cleanup_policies enable row level security;
alter table ballast.cleanup_policies force row level security;
alter table ballast.cleanup_runs enable row level security;
alter table ballast.cleanup_runs force row level security;

-- Tenancy and access: the append-only audit log and the registry of audited tables.
-- The trigger functions, policies, views and grants that use them live in sql/audit.sql and sql/app.sql.

-- An enum, not a CHECK: the audit trigger inserts on every audited statement, and a CHECK's expression is
-- rebuilt for each of those statements.
create type ballast.audit_op as enum ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE');

create table ballast.audit_log (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),  -- transaction start: every row of one statement shares it
  table_name text not null,          -- schema.table as it was named when the change happened
  op ballast.audit_op not null,
  record_id uuid,                    -- md5 of table name + primary key: one row's history is one index lookup; null for TRUNCATE
  old_values jsonb,                  -- the row before (UPDATE, DELETE), minus the excluded columns
  new_values jsonb,                  -- the row after (INSERT, UPDATE), minus the excluded columns
  changed_columns text[],            -- UPDATE: the columns whose value changed (excluded columns never listed)
  actor_id text,                     -- the JWT subject as issued (request.jwt.claims ->> 'sub': 'auth0|123', a uuid, ...); null without a session
  actor_role text not null,          -- the database role that made the change (ballast_admin, ballast_owner, ...)
  org_id uuid,                       -- the organisation the row belongs to (its org column), else the claims' org_id
  request_id text,                   -- request.id set by the API for the transaction
  txid bigint not null,              -- txid_current(): groups the rows of one transaction
  application_name text              -- the client's application_name (api, worker, psql, ...)
);
comment on table ballast.audit_log is
  E'Append-only history of changes to audited tables (ballast.enable_audit), one row per changed row.';
-- Retention deletes and time-range reads scan by time; BRIN suits an append-only table whose time grows with id.
create index audit_log_occurred_at_idx on ballast.audit_log using brin (occurred_at);
create index audit_log_record_id_idx on ballast.audit_log (record_id, id);
create index audit_log_org_id_idx on ballast.audit_log (org_id, id) where org_id is not null;
alter table ballast.audit_log enable row level security;
alter table ballast.audit_log force row level security;

create table ballast.audited_tables (
  table_name text primary key,       -- schema.table, qualified; text so a dropped and recreated table is still found
  pk_columns text[] not null,        -- the primary key at enable_audit time (record_id is built from it)
  exclude_columns text[] not null default '{}',
  org_column text,                   -- the row's organisation column, or null: the claims' org_id is recorded
  enabled_at timestamptz not null default now()
);
comment on table ballast.audited_tables is
  E'Tables with audit triggers (ballast.enable_audit); verify__access checks their triggers are still in place.';
alter table ballast.audited_tables enable row level security;
alter table ballast.audited_tables force row level security;

-- Idempotency keys (capability: idempotency). One row per (scope, key): who holds the key while the
-- request runs (a lease), then the stored result that retries get back. The functions that read and write
-- it live in sql/idempotency.sql; visitors never touch the table directly.

-- idempotency_keys keeps one CHECK (status): PostgreSQL re-plans every CHECK of a table for each INSERT or UPDATE
-- statement, and the functions validate every value before writing (see sql/idempotency.sql).
create table ballast.idempotency_keys (
  scope text not null,        -- whose key (1-1024 bytes, checked by the functions): e.g. 'sub:<user id>' or 'ip:<address>'
  key text not null,          -- the client's key: 1-255 printable ASCII characters (checked by the functions)
  request_hash text not null, -- 1-256 characters, e.g. SHA-256 of the request; same key + other hash = mismatch
  status text not null default 'in_progress' check (status in ('in_progress', 'completed')),
  status_code int,            -- the stored result (100-599), once completed
  response_body text,
  locked_until timestamptz,   -- end of the lease while in_progress: after it, the next caller takes the key over
  locked_by text,             -- the lease holder (setting ballast.idempotency_owner): only it may complete or release
  created_at timestamptz not null default now(),
  expires_at timestamptz not null, -- after this the key behaves as absent; the cleanup capability deletes the row
  primary key (scope, key)
);
comment on table ballast.idempotency_keys is
  E'Idempotency keys: a lease while the request runs, then its stored result (status_code, response_body) until expires_at.';

-- Cleanup deletes by expiry (where expires_at < now()); lookups use the primary key (scope, key).
create index idempotency_keys_expires_at_idx on ballast.idempotency_keys (expires_at);

alter table ballast.idempotency_keys enable row level security;
alter table ballast.idempotency_keys force row level security;

-- Materialized-view refresh queue (capability: refresh_queue): registrations, pending requests and the
-- refresh log; the example app's per-organisation fund summary. Functions, triggers, the pg_cron job and
-- the example's registration live in sql/refresh_queue.sql and sql/app_fund_stats.sql.

create table ballast.registered_matviews (
  matview regclass primary key,                  -- the materialized view the processor refreshes
  depends_on regclass[] not null check (cardinality(depends_on) > 0), -- source tables carrying its triggers
  debounce interval not null check (debounce > interval '0'),         -- quiet time after the last request
  max_delay interval not null check (max_delay >= debounce),          -- cap on the age of the oldest request
  request_flag regclass not null unique,         -- its sequence, created by register_matview(): see below
  registered_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  consecutive_failures int not null default 0 check (consecutive_failures >= 0), -- reset by a success
  next_attempt_at timestamptz                    -- after a failure: not retried before this (backoff)
);
comment on table ballast.registered_matviews is
  E'Materialized views refreshed by the refresh queue: their sources, debounce, max_delay and failure backoff.';

-- Pending requests. A view is pending when it has rows here or its request flag (a sequence, read by the
-- source triggers without a query, non-transactional) holds a deadline. Writers add a row at most once per
-- granularity (a tenth of the debounce, at most 1 s), the processor deletes the rows it claims.
-- No foreign key to registered_matviews: its check would share-lock the registration row on every insert.
create table ballast.materialized_view_refresh_queue (
  id bigint generated always as identity primary key,
  matview regclass not null,                     -- the registered view that is stale
  requested_at timestamptz not null default statement_timestamp() -- when the write (or the call) asked
);
create index materialized_view_refresh_queue_matview_requested_at_idx
  on ballast.materialized_view_refresh_queue (matview, requested_at);
comment on table ballast.materialized_view_refresh_queue is
  E'Pending refresh requests (with each view''s request flag): rows written by source-table triggers at most once per granularity, claimed by the processor.';

create table ballast.mv_refresh_log (
  id bigint generated always as identity primary key,
  matview regclass not null,
  started_at timestamptz not null,
  finished_at timestamptz not null,
  duration interval generated always as (finished_at - started_at) stored,
  mode text not null check (mode in ('concurrent', 'plain')),
  ok boolean not null,
  error text,                                    -- 'SQLSTATE: message' when not ok
  detail text,                                   -- why plain, how many requests, writers waited for
  requests int not null default 0,               -- queue rows this refresh claimed
  oldest_request_at timestamptz,                 -- the oldest of them: started_at minus this is the lag
  check (ok = (error is null))
);
create index mv_refresh_log_matview_started_at_idx on ballast.mv_refresh_log (matview, started_at desc);
create index mv_refresh_log_started_at_idx on ballast.mv_refresh_log (started_at);
comment on table ballast.mv_refresh_log is
  E'One row per refresh attempt of a registered materialized view: when, how long, concurrent or plain, and the error.';

alter table ballast.registered_matviews enable row level security;
alter table ballast.registered_matviews force row level security;
alter table ballast.materialized_view_refresh_queue enable row level security;
alter table ballast.materialized_view_refresh_queue force row level security;
alter table ballast.mv_refresh_log enable row level security;
alter table ballast.mv_refresh_log force row level security;

-- Cache invalidation (capability: invalidation): the trigger inbox, the tag queue, its dead letters and the
-- registry of tables that enqueue tags through invalidate_on_change(). Functions, views, triggers: sql/invalidation.sql.

-- The write path's only table: invalidate_on_change() triggers append one row per statement, with no
-- index, no sequence and no dedup lookup (each of those costs a single-row UPDATE measurably). The worker's
-- drain merges these rows into cache_invalidation_queue, deduplicated, in the transaction that claims.
create table ballast.cache_invalidation_inbox (
  tags text[] not null,                          -- the tags one statement produced (may repeat; merged later)
  enqueued_at timestamptz not null default now()
) with (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000); -- every row is deleted soon: keep the heap small
comment on table ballast.cache_invalidation_inbox is
  E'Tags appended by invalidate_on_change() triggers, one row per statement; drain_cache_invalidation_queue() merges them into cache_invalidation_queue.';
alter table ballast.cache_invalidation_inbox enable row level security;
alter table ballast.cache_invalidation_inbox force row level security;

-- No unique constraint on tag: writers never wait for each other's commit (dedup reads pending rows
-- without locking them; two concurrent equal tags at worst become two deliveries).
create table ballast.cache_invalidation_queue (
  id bigint generated always as identity primary key,
  tag text not null check (length(tag) between 1 and 512),
  enqueued_at timestamptz not null default now(),
  processed_at timestamptz,                           -- when a consumer acked delivery; null while pending
  retry_count int not null default 0,                 -- failed deliveries so far (fail_cache_invalidations)
  max_retries int not null default 10 check (max_retries >= 1), -- failures before the row becomes a dead letter
  next_attempt_at timestamptz not null default now(), -- not claimable before; a claim moves it to the lease's end
  attempts int not null default 0,                    -- claims so far; a claim whose consumer died counts too
  leased_until timestamptz,                           -- set by a claim, cleared by ack/fail; past = the consumer died
  last_error text
) with (
  fillfactor = 70,                     -- room on the page, so claims and failures (no indexed column changes) stay HOT
  autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,  -- a queue: vacuum by churn, not by size
  autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 20000
);
comment on table ballast.cache_invalidation_queue is
  E'Cache tags waiting for delivery to the sinks (HTTP purge, Redis, log) by the worker; delivered rows are kept for an hour.';
-- claim: pending rows in enqueue order, the due ones picked by next_attempt_at (pgmq's visibility timeout:
-- a lease is a next_attempt_at in the future). Not an index on next_attempt_at: a claim and a failure then
-- change no indexed column and are HOT updates, which is most of the delivery rate.
create index cache_invalidation_queue_pending_idx on ballast.cache_invalidation_queue (id)
  where processed_at is null;
-- dedup: is an equal tag already pending?
create index cache_invalidation_queue_pending_tag_idx on ballast.cache_invalidation_queue (tag)
  where processed_at is null;
-- cleanup of delivered rows
create index cache_invalidation_queue_processed_idx on ballast.cache_invalidation_queue (processed_at)
  where processed_at is not null;
alter table ballast.cache_invalidation_queue enable row level security;
alter table ballast.cache_invalidation_queue force row level security;

create table ballast.cache_invalidation_dead_letters (
  id bigint primary key,                    -- the queue row's id
  tag text not null,
  enqueued_at timestamptz not null,
  failed_at timestamptz not null default now(),
  retry_count int not null,
  attempts int not null,
  last_error text
);
comment on table ballast.cache_invalidation_dead_letters is
  E'Cache tags that failed max_retries deliveries; requeue_cache_invalidation_dead_letters() puts them back.';
create index cache_invalidation_dead_letters_failed_at_idx on ballast.cache_invalidation_dead_letters (failed_at);
alter table ballast.cache_invalidation_dead_letters enable row level security;
alter table ballast.cache_invalidation_dead_letters force row level security;

create table ballast.cache_invalidation_triggers (
  tbl regclass primary key,                 -- the table whose changes enqueue tags
  tags text[] not null,                     -- tag templates as registered, e.g. {'fund:{id}','funds'}
  collapse_above int not null check (collapse_above >= 1),
  function_name text not null,              -- the generated trigger function in schema ballast
  registered_at timestamptz not null default now()
);
comment on table ballast.cache_invalidation_triggers is
  E'Tables registered with invalidate_on_change(): their tag templates and generated trigger function.';
alter table ballast.cache_invalidation_triggers enable row level security;
alter table ballast.cache_invalidation_triggers force row level security;

-- The API server's tables: rate-limit token buckets and per-request tracing.
-- Functions, policies, the rollup materialized views and the prune schedule live in sql/api.sql.

-- One token bucket per (operation class, client); UNLOGGED because losing it in a crash only refills
-- every bucket, and WAL for a row updated on every request would cost more than the data is worth.
create unlogged table ballast.rate_limit_buckets (
  bucket text primary key check (length(bucket) between 1 and 200), -- e.g. 'query:sub:<uuid>', 'mutation:ip:2001:db8::/64'
  tokens double precision not null,          -- tokens left after the last take
  granted boolean not null,                  -- whether the last take was allowed
  updated_at timestamptz not null,           -- when tokens was computed
  full_at timestamptz not null               -- when the bucket is full again; past it the row is redundant
);
comment on table ballast.rate_limit_buckets is
  E'Token buckets of ballast.rate_limit_take(); rows past full_at are redundant and pruned by ballast.rate_limit_prune().';
create index rate_limit_buckets_full_at_idx on ballast.rate_limit_buckets (full_at);
alter table ballast.rate_limit_buckets enable row level security;
alter table ballast.rate_limit_buckets force row level security;

-- One row per API request (health probes and /metrics excepted), written in batches by the API.
create table ballast.performance_metrics (
  id bigint generated always as identity primary key,
  created_at timestamptz not null default now(),           -- when the request arrived
  endpoint text not null check (length(endpoint) <= 200),  -- normalised route, e.g. /graphql
  method text not null check (length(method) <= 16),
  status_code smallint not null check (status_code between 100 and 599),
  response_time_ms real not null check (response_time_ms >= 0),
  request_id text not null check (length(request_id) <= 128),
  operation_name text check (length(operation_name) <= 200), -- GraphQL operation name, when there is one
  operation_type text check (operation_type in ('query', 'mutation', 'subscription')),
  user_id uuid,                                            -- JWT sub, null for anonymous requests
  org_id uuid                                              -- JWT org_id
);
comment on table ballast.performance_metrics is
  E'One row per API request (endpoint, method, status, duration, request id, operation, user), written in batches; rolled up by ballast.api_metrics_5m and ballast.api_metrics_hourly.';
-- Retention deletes by time (the cleanup capability's policy needs an index leading with created_at).
create index performance_metrics_created_at_idx on ballast.performance_metrics (created_at);
alter table ballast.performance_metrics enable row level security;
alter table ballast.performance_metrics force row level security;
\endif

-- roles (created when missing, never altered)
\if :{?ballast_authenticator_password}
select set_config('ballast.install_authenticator_password', :'ballast_authenticator_password', true) as ballast_password_set \gset
\endif
do $ballast$
declare
  visitors text[] := array['ballast_anonymous', 'ballast_member', 'ballast_admin'];
  authenticator text := 'ballast_authenticator';
  wanted text[] := array['ballast_authenticator'] || visitors;
  missing text[];
  password text := nullif(current_setting('ballast.install_authenticator_password', true), '');
  r text;
  created text[] := '{}';
begin
  select coalesce(array_agg(w order by w), '{}') into missing
  from unnest(wanted) w where not exists (select 1 from pg_roles where rolname = w);
  if cardinality(missing) = 0 then
    return;
  end if;
  if not (select rolsuper or rolcreaterole from pg_roles where rolname = current_user) then
    raise exception using errcode = '42501',
      message = format('ballast needs the roles %s, which are missing, and %I may not create roles', array_to_string(missing, ', '), current_user),
      hint = 'Install as a role with CREATEROLE, or ask a superuser to create them: ' ||
             (select string_agg(format('create role %I %s', m, case when m = authenticator then 'login noinherit password ''...''' else 'nologin' end), '; ')
              from unnest(missing) m) || '; then grant ' || array_to_string(visitors, ', ') || ' to ' || authenticator || '.';
  end if;
  foreach r in array missing loop
    if r = authenticator then
      if password is null then
        execute format('create role %I nologin noinherit nosuperuser nocreatedb nocreaterole nobypassrls', r);
        raise notice 'ballast: created role % without LOGIN (no password was given); to let the API log in: alter role % login password ''...''', r, r;
      else
        execute format('create role %I login noinherit nosuperuser nocreatedb nocreaterole nobypassrls password %L', r, password);
      end if;
    else
      execute format('create role %I nologin nosuperuser nocreatedb nocreaterole nobypassrls', r);
    end if;
    insert into ballast.created_roles (role_name) values (r) on conflict do nothing;
    created := created || r;
  end loop;
  -- memberships only between roles made just now: an existing role's memberships are its owner's business
  foreach r in array visitors loop
    if (r = any(created) or authenticator = any(created))
       and not pg_has_role(authenticator, r, 'member') then
      execute format('grant %I to %I', r, authenticator);
    end if;
  end loop;
end
$ballast$;
select set_config('ballast.install_authenticator_password', '', true) as ballast_password_cleared \gset
-- definitions (sql/), re-applied when they differ from what this database has
select coalesce((select definitions_sha1 from ballast.installs order by id desc limit 1), '') <> '6eeb1d0253356174987fcf33bde6c6a883d0d4c2' as ballast_definitions \gset
\if :ballast_definitions

-- sql/kit.sql
-- The kit's shared pieces: its version, the owner-only policy every ballast table gets, pg_cron jobs.
-- ballast tables have RLS enabled and forced; only the owner (the kit's SECURITY DEFINER functions and
-- the pg_cron jobs it schedules) reads and writes them directly, API roles go through functions.

---- owner_only_policy
---- Gives a ballast table RLS (enabled and forced) with one policy: the owner may do everything.
create or replace function ballast.owner_only_policy(tbl regclass)
returns void as $$
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'owner_only_policy: table must not be null';
  end if;
  execute format('alter table %s enable row level security', tbl);
  execute format('alter table %s force row level security', tbl);
  execute format('drop policy if exists owner_all on %s', tbl);
  execute format('create policy owner_all on %s for all to %I using (true) with check (true)',
    tbl, (select r.rolname from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = tbl));
end;
$$ language plpgsql volatile;
comment on function ballast.owner_only_policy(regclass) is
  E'Enable and force RLS on a kit table and allow its owner everything; other roles get nothing.';

select ballast.owner_only_policy('ballast.migrations');
select ballast.owner_only_policy('ballast.installs');
select ballast.owner_only_policy('ballast.created_roles');
select ballast.owner_only_policy('ballast.settings');
select ballast.owner_only_policy('ballast.verify_exemptions');
select ballast.owner_only_policy('ballast.worker_heartbeats');

---- schedule_job
---- Creates or updates a named pg_cron job, where pg_cron lives (cron.database_name); elsewhere (the
---- shadow database, a database without the extension) it does nothing and says so by returning null.
create or replace function ballast.schedule_job(job_name text, schedule text, command text)
returns bigint as $$
begin
  if job_name is null or job_name !~ '^[a-z][a-z0-9_ ]{0,62}$' then
    raise exception using errcode = '22023',
      message = format('schedule_job: job_name %L must be 1 to 63 characters of a-z, 0-9, _ and space, starting with a letter', job_name);
  end if;
  if schedule is null or command is null or btrim(command) = '' then
    raise exception using errcode = '22004',
      message = format('schedule_job: job %L needs a schedule and a command (got schedule %L, command %L)', job_name, schedule, command);
  end if;
  if to_regnamespace('cron') is null then
    return null;
  end if;
  if not has_schema_privilege('cron', 'usage') then
    raise notice 'ballast: pg_cron job % not scheduled: % may not use schema cron (a superuser can: grant usage on schema cron to %)',
      job_name, current_user, current_user;
    return null;
  end if;
  -- cron.schedule with a name updates the job of that name in place (pg_cron >= 1.3)
  return cron.schedule(job_name, schedule, command);
end;
$$ language plpgsql volatile;
comment on function ballast.schedule_job(text, text, text) is
  E'Create or update the pg_cron job job_name (schedule in UTC, as pg_cron reads it); returns its jobid, or null where pg_cron is not installed (only cron.database_name has it). 22023 for a bad job name, 22004 for a missing schedule or command; pg_cron itself rejects a bad schedule.';

---- unschedule_job
---- Removes a named pg_cron job if it exists; false when there was none or pg_cron is not installed here.
create or replace function ballast.unschedule_job(job_name text)
returns boolean as $$
begin
  if job_name is null then
    raise exception using errcode = '22004', message = 'unschedule_job: job_name must not be null';
  end if;
  if to_regnamespace('cron') is null then
    return false; -- checked alone: a condition naming cron.job could not even be planned here
  end if;
  if not exists (select from cron.job j where j.jobname = unschedule_job.job_name) then
    return false;
  end if;
  return cron.unschedule(job_name);
end;
$$ language plpgsql volatile;
comment on function ballast.unschedule_job(text) is
  E'Remove the pg_cron job job_name; false when no such job exists or pg_cron is not installed in this database. 22004 for a null name.';

---- version
---- The version of the kit installed in this database (package.json of the installer that last changed it).
create or replace function ballast.version()
returns text as $$
  select i.version from ballast.installs i order by i.id desc limit 1
$$ language sql stable security definer set search_path = pg_catalog;
comment on function ballast.version() is
  E'The ballast version installed in this database, e.g. ''0.1.0'' (the newest row of ballast.installs).';

-- The kit's roles reach its functions and views through the schema; what each may do is granted per object.
grant usage on schema ballast to ballast_authenticator, ballast_anonymous, ballast_member, ballast_admin;

---- setting_defaults
---- Every setting the kit reads, with its default and what it means.
create or replace function ballast.setting_defaults()
returns table (name text, value jsonb, description text) as $$
  values
    ('verify_schemas', '[]'::jsonb,
     'Schemas of yours that verify_migration_success() checks besides ballast: RLS enabled and forced, and policies, on every table. A JSON array of schema names, e.g. ["app_public", "app_private"].'),
    ('exposed_schemas', '[]'::jsonb,
     'Schemas your API exposes (PostGraphile''s schemas): verify_migration_success() wants every SECURITY DEFINER function there commented with why it is safe. A JSON array of schema names.'),
    ('org_claim', '"org_id"'::jsonb,
     'The top-level JWT claim holding the uuid of the organisation the session acts for (ballast.current_org_id()), e.g. "https://example.com/org_id" for a namespaced Auth0 claim. A JSON string; the API''s JWT_ORG_CLAIM must name the same claim.'),
    ('role_claim', '"role"'::jsonb,
     'The top-level JWT claim holding the application role, member or admin (ballast.current_app_role()), e.g. "https://example.com/role". A JSON string; the API''s JWT_ROLE_CLAIM must name the same claim.'),
    ('visitor_roles', '{}'::jsonb,
     'Database roles of yours that act as the kit''s visitor roles, each mapped to the kit role it is granted (grant ballast_member to authenticated), e.g. {"anon": "ballast_anonymous", "authenticated": "ballast_member"}. verify_migration_success() checks each has exactly that role''s rights and no RLS bypass.')
$$ language sql immutable;
comment on function ballast.setting_defaults() is
  E'The settings ballast.configure() accepts: name, default value (jsonb) and description.';

---- setting
---- A setting's value: what ballast.configure() stored, else its default.
create or replace function ballast.setting(name text)
returns jsonb as $$
  select coalesce((select s.value from ballast.settings s where s.name = setting.name),
                  (select d.value from ballast.setting_defaults() d where d.name = setting.name))
$$ language sql stable security definer set search_path = pg_catalog;
comment on function ballast.setting(text) is
  E'The value of a ballast setting (see ballast.setting_defaults()); null for a name that is not a setting.';

---- configure
---- Sets one setting after checking its value; null resets it to the default.
create or replace function ballast.configure(name text, value jsonb)
returns jsonb as $$
declare
  known text[] := array(select d.name from ballast.setting_defaults() d order by 1);
begin
  if name is null or not name = any(known) then
    raise exception using errcode = '22023',
      message = format('configure: unknown setting %L', name),
      hint = 'Settings: ' || array_to_string(known, ', ') || ' (select * from ballast.setting_defaults()).';
  end if;
  if value is null then
    delete from ballast.settings s where s.name = configure.name;
    if name in ('org_claim', 'role_claim') then
      perform ballast.apply_claim_settings();  -- sql/access.sql: the claim names as inlinable literals
    end if;
    return ballast.setting(name);
  end if;
  if name in ('org_claim', 'role_claim') then
    if jsonb_typeof(value) <> 'string' or length(value #>> '{}') not between 1 and 200 or (value #>> '{}') ~ '[[:cntrl:]]' then
      raise exception using errcode = '22023',
        message = format('configure: %s must be a JSON string naming a top-level claim of your tokens (1 to 200 characters, no control characters), got %s', name, value),
        hint = format('e.g. select ballast.configure(%L, ''"https://example.com/%s"'')', name, case name when 'org_claim' then 'org_id' else 'role' end);
    end if;
    if (value #>> '{}') in ('sub', 'exp', 'iat', 'nbf', 'iss', 'aud', 'jti') then
      raise exception using errcode = '22023',
        message = format('configure: %s must not be the registered claim %s (sub, exp, iat, nbf, iss, aud and jti mean what RFC 7519 says)', name, value);
    end if;
    if value = ballast.setting(case name when 'org_claim' then 'role_claim' else 'org_claim' end) then
      raise exception using errcode = '22023',
        message = format('configure: %s %s is already the %s: the organisation and the role need claims of their own', name, value,
                         case name when 'org_claim' then 'role_claim' else 'org_claim' end);
    end if;
  end if;
  if name = 'visitor_roles' then
    if jsonb_typeof(value) <> 'object' or exists (
         select 1 from jsonb_each(value) e
          where length(e.key) not between 1 and 63 or e.key like 'ballast\_%'
             or e.value not in ('"ballast_anonymous"', '"ballast_member"', '"ballast_admin"')) then
      raise exception using errcode = '22023',
        message = format('configure: visitor_roles must be a JSON object mapping your role names (1 to 63 characters, not ballast_*) to ballast_anonymous, ballast_member or ballast_admin, got %s', value),
        hint = 'e.g. select ballast.configure(''visitor_roles'', ''{"anon": "ballast_anonymous", "authenticated": "ballast_member"}''), after grant ballast_anonymous to anon; grant ballast_member to authenticated.';
    end if;
  end if;
  if name in ('verify_schemas', 'exposed_schemas') then
    if jsonb_typeof(value) <> 'array' or exists (
         select 1 from jsonb_array_elements(value) e
         where jsonb_typeof(e) <> 'string' or length(e #>> '{}') not between 1 and 63) then
      raise exception using errcode = '22023',
        message = format('configure: %s must be a JSON array of schema names (1 to 63 characters each), got %s', name, value),
        hint = format('e.g. select ballast.configure(%L, ''["app_public", "app_private"]'')', name);
    end if;
  end if;
  insert into ballast.settings as s (name, value) values (configure.name, configure.value)
  on conflict on constraint settings_pkey do update set value = excluded.value, updated_at = now();
  if name in ('org_claim', 'role_claim') then
    perform ballast.apply_claim_settings();
  end if;
  return value;
end;
$$ language plpgsql volatile;
comment on function ballast.configure(text, jsonb) is
  E'Set a ballast setting (see ballast.setting_defaults()) and return its value; null resets it to the default. 22023 for an unknown name or a value of the wrong shape. org_claim and role_claim take effect in every session once committed (ballast.apply_claim_settings()).';

---- verify_schemas
---- The schemas verify_migration_success() checks for RLS and policies: ballast and the configured ones.
create or replace function ballast.verify_schemas()
returns name[] as $$
  select array['ballast'::name] || array(select jsonb_array_elements_text(ballast.setting('verify_schemas'))::name)
$$ language sql stable;
comment on function ballast.verify_schemas() is
  E'Schemas whose tables verify_migration_success() checks for RLS and policies: ballast, plus the setting verify_schemas.';

-- sql/refresh_queue.sql
-- Materialized-view refresh queue (capability: refresh_queue).
-- So far: the check that says whether each materialized view can be refreshed CONCURRENTLY.

---- check_matview_unique_indexes
---- For every materialized view: can REFRESH ... CONCURRENTLY run on it, and if not, exactly why.
create or replace function ballast.check_matview_unique_indexes()
returns table (matview regclass, concurrent_ok boolean, reason text) as $$
  with mv as (
    select c.oid, c.relispopulated
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'm' and n.nspname not in ('pg_catalog', 'information_schema')
  ), idx as (
    select i.indrelid,
           bool_or(i.indisunique and i.indisvalid and i.indpred is null and i.indexprs is null and am.amname = 'btree') as usable,
           bool_or(i.indisunique) as any_unique,
           string_agg(
             case when i.indisunique then
               format('%s is %s', i.indexrelid::regclass, concat_ws(', ',
                 case when i.indpred is not null then 'partial (has WHERE)' end,
                 case when i.indexprs is not null then 'on expressions' end,
                 case when not i.indisvalid then 'not valid' end,
                 case when am.amname <> 'btree' then am.amname || ', not btree' end))
             end, '; ' order by i.indexrelid::regclass::text) as why_not
    from pg_index i
    join pg_class ic on ic.oid = i.indexrelid
    join pg_am am on am.oid = ic.relam
    where i.indrelid in (select oid from mv)
    group by i.indrelid
  )
  select mv.oid::regclass,
         coalesce(idx.usable, false) and mv.relispopulated,
         case
           when not coalesce(idx.any_unique, false) then
             'no unique index: create unique index on ' || mv.oid::regclass || ' (<columns that identify a row>)'
           when not idx.usable then
             'no usable unique index (' || idx.why_not || '): CONCURRENTLY needs a valid unique btree index on plain columns without WHERE'
           when not mv.relispopulated then
             'not populated: the first refresh must be a plain REFRESH MATERIALIZED VIEW'
           else 'ok'
         end
  from mv left join idx on idx.indrelid = mv.oid
  order by mv.oid::regclass::text
$$ language sql stable;
comment on function ballast.check_matview_unique_indexes() is
  E'Every materialized view in the database: whether REFRESH ... CONCURRENTLY can run on it, and the exact reason when not.';


-- ---------------------------------------------------------------------------------------------------
-- The queue. Data flows one way: statement trigger on a source table → request (flag + queue row) →
-- process_materialized_view_refreshes() (pg_cron, every minute) → ballast.mv_refresh_log.
--
-- No hot row, and no query, on the write path. Each registered view has a request flag: a sequence
-- (ballast.matview_request_flag_<oid>) holding a deadline in ms since the epoch. The source trigger reads
-- it with pg_sequence_last_value(), which is not transactional and takes no row lock: while the deadline
-- is in the future it does nothing more. Otherwise (at most once per granularity, a tenth of the debounce
-- and at most 1 s) it calls record_refresh_request(), which moves the deadline and appends a row to
-- ballast.materialized_view_refresh_queue. Each view gets a generated trigger function with its flag as
-- a constant (ballast.tg__matview_request_flag_<n>, see create_request_trigger_function()). A view is
-- pending while it has queue rows or a flag above 0.
--
-- Why skipping loses nothing: the processor claims a view by setting its flag to 0 and deleting its
-- rows, commits, then waits for every transaction that holds a write lock on one of the view's sources,
-- and only then takes the refresh snapshot. The trigger fires BEFORE each statement, but a statement
-- takes its table lock (ROW EXCLUSIVE, or ACCESS EXCLUSIVE for TRUNCATE) before its triggers fire and a
-- transaction keeps it until it ends: either the writer read the flag before the claim (then the
-- processor waits for it and the refresh sees its write) or after (then it found 0 and queued a
-- request). A request row of a writer that commits after the claim is not deleted by it. The flag being
-- outside transactions makes this hold at every isolation level; an aborted writer leaves at most a
-- spurious request. Measurements behind this design: docs/ARCHITECTURE.md.
-- ---------------------------------------------------------------------------------------------------

select ballast.owner_only_policy('ballast.registered_matviews');
select ballast.owner_only_policy('ballast.materialized_view_refresh_queue');
select ballast.owner_only_policy('ballast.mv_refresh_log');
-- Source triggers run as the writer: they look up the flag by its qualified name and may call
-- record_refresh_request(). USAGE lets any role resolve names in ballast; every object still has its own
-- privileges (functions revoked from public, tables owner-only).
grant usage on schema ballast to public;

---- refresh_lock_key
---- The second key of a view's refresh advisory lock: the view's oid as a signed int (pg_locks shows it as objid).
create or replace function ballast.refresh_lock_key(matview regclass)
returns int as $$
  select (case when matview::oid::bigint > 2147483647 then matview::oid::bigint - 4294967296
               else matview::oid::bigint end)::int
$$ language sql immutable strict;
comment on function ballast.refresh_lock_key(regclass) is
  E'Second key of the advisory lock (first key 1650551923, ''bals'') that one processor holds while it refreshes a view.';

---- try_lock_matview_refresh
---- Takes the session advisory lock that makes a processor the only one refreshing this view; false when taken.
create or replace function ballast.try_lock_matview_refresh(matview regclass)
returns boolean as $$
  select pg_catalog.pg_try_advisory_lock(1650551923, ballast.refresh_lock_key(matview))
$$ language sql volatile strict;
comment on function ballast.try_lock_matview_refresh(regclass) is
  E'Try to become the one processor refreshing this view (session advisory lock, per database); false when another holds it.';

---- unlock_matview_refresh
---- Releases the refresh lock of a view taken by try_lock_matview_refresh() in this session.
create or replace function ballast.unlock_matview_refresh(matview regclass)
returns boolean as $$
  select pg_catalog.pg_advisory_unlock(1650551923, ballast.refresh_lock_key(matview))
$$ language sql volatile strict;
comment on function ballast.unlock_matview_refresh(regclass) is
  E'Release this session''s refresh lock of a view.';

---- release_own_refresh_locks
---- Releases refresh locks this session still holds (left behind by a processor call that was cancelled).
create or replace function ballast.release_own_refresh_locks()
returns int as $$
declare
  key oid;
  released int := 0;
begin
  for key in
    select l.objid from pg_catalog.pg_locks l
    where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.classid = 1650551923 and l.objsubid = 2
  loop
    while exists (select from pg_catalog.pg_locks l
                  where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid()
                    and l.classid = 1650551923 and l.objid = key and l.objsubid = 2) loop
      perform ballast.unlock_matview_refresh(key::regclass);
      released := released + 1;
    end loop;
  end loop;
  return released;
end;
$$ language plpgsql volatile;
comment on function ballast.release_own_refresh_locks() is
  E'Release the refresh locks this session holds; a processor call starts with it, as one call at a time runs per session.';

---- refresh_request_granularity
---- How long writers skip after a recorded request: a tenth of the debounce, at most 1 s.
create or replace function ballast.refresh_request_granularity(debounce interval)
returns interval as $$
  select least(debounce / 10, interval '1 second')
$$ language sql immutable strict;
comment on function ballast.refresh_request_granularity(interval) is
  E'While writes go on, a request is recorded at most this often per view, so "debounce since the last request" errs by at most this.';

---- refresh_backoff
---- Wait before retrying a view after its n-th consecutive failure: 10 s doubling each time, at most 1 hour.
create or replace function ballast.refresh_backoff(failures int)
returns interval as $$
  select least(interval '10 seconds' * power(2, least(greatest(failures, 1), 20) - 1), interval '1 hour')
$$ language sql immutable strict;
comment on function ballast.refresh_backoff(int) is
  E'Exponential backoff after the n-th consecutive failed refresh of a view: 10 s, 20 s, 40 s, ... at most 1 hour.';

---- epoch_ms
---- A timestamp as milliseconds since 1970-01-01, the unit of the request flags.
create or replace function ballast.epoch_ms(ts timestamptz)
returns bigint as $$
  select (pg_catalog.date_part('epoch', ts) * 1000)::bigint
$$ language sql immutable strict;
comment on function ballast.epoch_ms(timestamptz) is
  E'Milliseconds since the Unix epoch: the unit of the request flag sequences.';

---- request_flag_deadline
---- A view's request flag: until when writers need not record another request (null when none is pending).
create or replace function ballast.request_flag_deadline(request_flag regclass)
returns timestamptz as $$
  select case when v > 0 then pg_catalog.to_timestamp(v / 1000.0) end
  from (select case when exists (select from pg_catalog.pg_class c where c.oid = request_flag and c.relkind = 'S')
                    then pg_catalog.pg_sequence_last_value(request_flag) end as v) f
$$ language sql volatile strict;
comment on function ballast.request_flag_deadline(regclass) is
  E'The deadline a request flag holds (null when 0, i.e. nothing pending since the last claim).';

---- record_refresh_request
---- The write path's slow branch: moves the view's flag deadline and appends a queue row (SECURITY DEFINER).
create or replace function ballast.record_refresh_request(request_flag regclass)
returns void as $$
declare
  reg record;
  now_ms bigint := ballast.epoch_ms(clock_timestamp());
begin
  select r.matview, r.debounce into reg
  from ballast.registered_matviews r where r.request_flag = record_refresh_request.request_flag;
  if not found then
    return;  -- a trigger left behind by an unregistered view: nothing to refresh
  end if;
  -- Writers that raced here behind the first one find the deadline moved already.
  if coalesce(pg_sequence_last_value(record_refresh_request.request_flag), 0) > now_ms then
    return;
  end if;
  perform setval(record_refresh_request.request_flag,
                 now_ms + ballast.epoch_ms('epoch'::timestamptz + ballast.refresh_request_granularity(reg.debounce)));
  insert into ballast.materialized_view_refresh_queue (matview, requested_at) values (reg.matview, clock_timestamp());
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.record_refresh_request(regclass) is
  E'Called by the source triggers when a view''s request flag has expired: records a request (flag deadline + queue row). Executable by every role; it only ever marks a registered view stale.';
-- executable by every role: granted in sql/privileges.sql, which owns every grant to PUBLIC

---- request_trigger_function
---- The trigger function register_matview() generates for a view's request flag: ballast.tg__<flag name>().
-- Its hot path is one plpgsql expression and no query: while the flag's deadline lies ahead, a recent
-- request is already pending. The flag is a constant in the body (resolved once per session, not per
-- statement), which is why each view gets its own function. Runs as the writer: SECURITY DEFINER would
-- cost more than the rest of it, and the flag is readable by everyone.
create or replace function ballast.request_trigger_function(request_flag regclass)
returns text as $$
  select format('ballast.%I', 'tg__' || c.relname) from pg_catalog.pg_class c where c.oid = request_flag
$$ language sql stable strict;
comment on function ballast.request_trigger_function(regclass) is
  E'Qualified name of the trigger function generated for a request flag (ballast.tg__matview_request_flag_<n>).';

---- create_request_trigger_function
---- (Re)creates the trigger function of a request flag; see request_trigger_function().
create or replace function ballast.create_request_trigger_function(request_flag regclass, matview regclass)
returns text as $$
declare
  fn text := ballast.request_trigger_function(request_flag);
  flag text := ballast.relation_name(request_flag);
begin
  execute format($f$
    create or replace function %s() returns trigger as $body$
    begin
      if pg_catalog.pg_sequence_last_value(%L::pg_catalog.regclass)
         > pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000 then
        return null;
      end if;
      perform ballast.record_refresh_request(%L::pg_catalog.regclass);
      return null;
    end;
    $body$ language plpgsql volatile$f$, fn, flag, flag);
  execute format('comment on function %s() is %L', fn,
    format('Statement trigger generated by ballast.register_matview() for %s: requests a refresh unless request flag %s holds a deadline ahead.',
           ballast.relation_name(matview), flag));
  return fn;
end;
$$ language plpgsql volatile;
comment on function ballast.create_request_trigger_function(regclass, regclass) is
  E'Generate the statement-trigger function of a registered view''s request flag (called by register_matview).';

---- relation_name
---- schema.name of a relation, always qualified and quoted (what the source triggers look the flag up by).
create or replace function ballast.relation_name(rel regclass)
returns text as $$
  select format('%I.%I', n.nspname, c.relname)
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.oid = rel
$$ language sql stable strict;
comment on function ballast.relation_name(regclass) is
  E'schema.name of a relation, qualified whatever the search_path; null when it does not exist.';

---- refresh_trigger_name
---- The name register_matview() gives the trigger of a view on its sources: _900_ballast_mv__<schema>__<view>.
create or replace function ballast.refresh_trigger_name(matview regclass)
returns text as $$
  select case when length(base) <= 63 then base else left(base, 54) || '_' || left(md5(base), 8) end
  from (select '_900_ballast_mv__' || n.nspname || '__' || c.relname as base
        from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.oid = matview) b
$$ language sql stable strict;
comment on function ballast.refresh_trigger_name(regclass) is
  E'Name of the statement trigger that requests refreshes of this view on each of its source tables.';

---- refresh_triggers
---- Every trigger that runs a generated request function: on which table, under what name, for which flag.
create or replace function ballast.refresh_triggers()
returns table (source regclass, trigger_name name, request_flag regclass, function_name text, tgtype int, enabled boolean) as $$
  select t.tgrelid::regclass, t.tgname, to_regclass(format('ballast.%I', substr(p.proname, 5))),
         format('ballast.%I', p.proname), t.tgtype::int, t.tgenabled <> 'D'
  from pg_catalog.pg_trigger t
  join pg_catalog.pg_proc p on p.oid = t.tgfoid
  where p.pronamespace = 'ballast'::regnamespace and p.proname like 'tg\_\_matview\_request\_flag\_%' and not t.tgisinternal
$$ language sql stable;
comment on function ballast.refresh_triggers() is
  E'The statement triggers register_matview() installed: source table, name, the request flag they mark, their function, type, enabled.';

---- assert_matview
---- Raises 22004/42809 unless the argument is an existing materialized view.
create or replace function ballast.assert_matview(matview regclass, fn text)
returns void as $$
declare
  kind "char";
begin
  if matview is null then
    raise exception using errcode = '22004', message = format('%s: view must not be null', fn),
      hint = 'Pass a materialized view, e.g. ''app_private.fund_stats''::regclass.';
  end if;
  select c.relkind into kind from pg_catalog.pg_class c where c.oid = matview;
  if kind is distinct from 'm' then
    raise exception using errcode = '42809',
      message = format('%s: %s is %s, not a materialized view', fn, matview,
                       case when kind is null then 'not an existing relation (dropped?)'
                            else case kind when 'r' then 'a table' when 'v' then 'a view' when 'p' then 'a partitioned table'
                                           when 'f' then 'a foreign table' when 'i' then 'an index' when 'S' then 'a sequence'
                                           else format('of kind %L', kind) end end),
      hint = 'Pass a materialized view (relkind m).';
  end if;
end;
$$ language plpgsql stable;
comment on function ballast.assert_matview(regclass, text) is
  E'Input check shared by the refresh-queue functions: raises 22004 for null, 42809 when not a materialized view.';

---- register_matview
---- Records a view and installs statement triggers on its source tables; calling it again updates the settings.
create or replace function ballast.register_matview(
  view regclass, depends_on regclass[], debounce interval default '30 seconds', max_delay interval default '5 minutes')
returns void as $$
declare
  sources regclass[];
  bad record;
  flag regclass;
  flag_name text;
  fn text;
  t record;
begin
  perform ballast.assert_matview(register_matview.view, 'register_matview');
  if register_matview.depends_on is null or cardinality(register_matview.depends_on) = 0
     or array_position(register_matview.depends_on, null) is not null then
    raise exception using errcode = '22023',
      message = format('register_matview: depends_on must list at least one source table and no nulls, got %s',
                       coalesce(register_matview.depends_on::text, 'null')),
      hint = format('e.g. select ballast.register_matview(%L, array[''app_public.funds'']::regclass[])', register_matview.view::text);
  end if;
  select array_agg(distinct s order by s) into sources from unnest(register_matview.depends_on) s;
  select s as source, c.relkind into bad
  from unnest(sources) s join pg_catalog.pg_class c on c.oid = s
  where c.relkind not in ('r', 'p') limit 1;
  if found then
    raise exception using errcode = '42809',
      message = format('register_matview: depends_on entry %s is %s, not a table', bad.source,
                       case bad.relkind when 'v' then 'a view' when 'm' then 'a materialized view'
                                        when 'f' then 'a foreign table' else format('of kind %L', bad.relkind) end),
      hint = 'List the tables the view reads; writes to them are what make it stale.';
  end if;
  if register_matview.debounce is null or register_matview.debounce <= interval '0' then
    raise exception using errcode = '22023',
      message = format('register_matview: debounce must be a positive interval, got %s', coalesce(register_matview.debounce::text, 'null')),
      hint = 'e.g. ''30 seconds'': refresh once writes have been quiet that long.';
  end if;
  if register_matview.max_delay is null or register_matview.max_delay <= interval '0' then
    raise exception using errcode = '22023',
      message = format('register_matview: max_delay must be a positive interval, got %s', coalesce(register_matview.max_delay::text, 'null')),
      hint = 'e.g. ''5 minutes'': refresh at the latest this long after the oldest pending request.';
  end if;
  if register_matview.max_delay < register_matview.debounce then
    raise exception using errcode = '22023',
      message = format('register_matview: max_delay (%s) must be at least debounce (%s)', register_matview.max_delay, register_matview.debounce),
      hint = 'Raise max_delay or lower debounce.';
  end if;

  -- A view dropped and created again (a migration changing its query) has a new oid: forget the old
  -- registration; drop triggers whose flag belongs to no registration.
  perform ballast.unregister_matview(r.matview) from ballast.registered_matviews r
  where not exists (select from pg_catalog.pg_class c where c.oid = r.matview);
  for t in
    select x.source, x.trigger_name from ballast.refresh_triggers() x
    where not exists (select from ballast.registered_matviews r where r.request_flag = x.request_flag)
  loop
    execute format('drop trigger %I on %s', t.trigger_name, t.source);
  end loop;
  for t in
    select p.oid::regprocedure as fn from pg_catalog.pg_proc p
    where p.pronamespace = 'ballast'::regnamespace and p.proname like 'tg\_\_matview\_request\_flag\_%'
      and not exists (select from ballast.registered_matviews r
                      where ballast.request_trigger_function(r.request_flag) = format('ballast.%I', p.proname))
  loop
    execute format('drop function %s', t.fn);
  end loop;

  -- The request flag: created once, kept across re-registrations (writers read it by name).
  select r.request_flag into flag from ballast.registered_matviews r where r.matview = register_matview.view;
  if flag is null then
    flag_name := 'matview_request_flag_' || register_matview.view::oid;
    flag := to_regclass(format('ballast.%I', flag_name));
    if flag is null then
      execute format('create sequence ballast.%I as bigint minvalue 0 start with 0 no cycle', flag_name);
      flag := format('ballast.%I', flag_name)::regclass;
    end if;
    -- owned by the kit's owner, who runs record_refresh_request() and the processor
    execute format('alter sequence %s owner to %I', flag,
      (select r.rolname from pg_catalog.pg_proc p join pg_catalog.pg_roles r on r.oid = p.proowner
       where p.oid = 'ballast.record_refresh_request(regclass)'::regprocedure));
    execute format('grant select on sequence %s to public', flag);
    execute format('comment on sequence %s is %L', flag,
      format('refresh_queue request flag of %s: ms since the epoch until which writers need not record another request; 0 = none since the last claim',
             ballast.relation_name(register_matview.view)));
  end if;

  insert into ballast.registered_matviews as r (matview, depends_on, debounce, max_delay, request_flag)
  values (register_matview.view, sources, register_matview.debounce, register_matview.max_delay, flag)
  on conflict (matview) do update
    set depends_on = excluded.depends_on, debounce = excluded.debounce, max_delay = excluded.max_delay, updated_at = now()
    where (r.depends_on, r.debounce, r.max_delay) is distinct from (excluded.depends_on, excluded.debounce, excluded.max_delay);

  -- The trigger function, then the triggers: keep the ones that are already right (no lock taken on
  -- busy tables on a re-run), drop the others, create the missing ones.
  fn := ballast.create_request_trigger_function(flag, register_matview.view);
  for t in select * from ballast.refresh_triggers() x where x.request_flag = flag loop
    if not (t.source = any(sources)) or t.tgtype <> 62 or not t.enabled then
      execute format('drop trigger %I on %s', t.trigger_name, t.source);
    end if;
  end loop;
  for t in
    select s as source from unnest(sources) s
    where not exists (select from ballast.refresh_triggers() x where x.source = s and x.request_flag = flag)
  loop
    execute format('create trigger %I before insert or update or delete or truncate on %s for each statement execute function %s()',
                   ballast.refresh_trigger_name(register_matview.view), t.source, fn);
  end loop;
end;
$$ language plpgsql volatile;
comment on function ballast.register_matview(regclass, regclass[], interval, interval) is
  E'Register a materialized view with the refresh queue: statement triggers on every source table request a refresh; refreshed when debounce has passed since the last request or max_delay since the oldest. Idempotent: a second call updates the settings.';

---- unregister_matview
---- Removes a view's triggers, request flag, pending requests and registration (its refresh log stays).
create or replace function ballast.unregister_matview(view regclass)
returns void as $$
declare
  reg record;
  t record;
begin
  if unregister_matview.view is null then
    raise exception using errcode = '22004', message = 'unregister_matview: view must not be null';
  end if;
  select * into reg from ballast.registered_matviews r where r.matview = unregister_matview.view;
  if not found then
    raise exception using errcode = '22023',
      message = format('unregister_matview: %s is not registered', unregister_matview.view),
      hint = 'select matview from ballast.registered_matviews lists the registered views.';
  end if;
  for t in select * from ballast.refresh_triggers() x where x.request_flag = reg.request_flag loop
    execute format('drop trigger %I on %s', t.trigger_name, t.source);
  end loop;
  delete from ballast.materialized_view_refresh_queue q where q.matview = unregister_matview.view;
  delete from ballast.registered_matviews r where r.matview = unregister_matview.view;
  if to_regprocedure(ballast.request_trigger_function(reg.request_flag) || '()') is not null then
    execute format('drop function %s()', ballast.request_trigger_function(reg.request_flag));
  end if;
  execute format('drop sequence if exists %s', reg.request_flag);
end;
$$ language plpgsql volatile;
comment on function ballast.unregister_matview(regclass) is
  E'Stop refreshing a view through the queue: drops its triggers, request flag, pending requests and registration. Accepts the oid of a dropped view.';

---- request_refresh
---- Queues a refresh request for a registered view (what the source triggers do, callable by hand).
create or replace function ballast.request_refresh(view regclass)
returns void as $$
declare
  reg record;
begin
  perform ballast.assert_matview(request_refresh.view, 'request_refresh');
  select * into reg from ballast.registered_matviews r where r.matview = request_refresh.view;
  if not found then
    raise exception using errcode = '22023',
      message = format('request_refresh: %s is not registered with the refresh queue', request_refresh.view),
      hint = 'Register it first: select ballast.register_matview(view, depends_on => array[...]::regclass[]).';
  end if;
  perform setval(reg.request_flag, greatest(coalesce(pg_sequence_last_value(reg.request_flag), 0),
    ballast.epoch_ms(clock_timestamp() + ballast.refresh_request_granularity(reg.debounce))));
  insert into ballast.materialized_view_refresh_queue (matview, requested_at) values (request_refresh.view, clock_timestamp());
end;
$$ language plpgsql volatile;
comment on function ballast.request_refresh(regclass) is
  E'Queue a refresh of a registered materialized view; it is refreshed once due (debounce / max_delay).';

---- matview_requests
---- Per registered view that exists: its pending requests (queue rows and flag), settings and backoff.
create or replace function ballast.matview_requests()
returns table (matview regclass, populated boolean, oldest timestamptz, newest timestamptz, n bigint,
               debounce interval, max_delay interval, next_attempt_at timestamptz) as $$
  -- The flag holds the last recorded request's time plus the granularity.
  select r.matview, c.relispopulated, least(q.oldest, f.requested), greatest(q.newest, f.requested), coalesce(q.n, 0),
         r.debounce, r.max_delay, r.next_attempt_at
  from ballast.registered_matviews r
  join pg_catalog.pg_class c on c.oid = r.matview and c.relkind = 'm'
  left join lateral (
    select min(x.requested_at) as oldest, max(x.requested_at) as newest, count(*) as n
    from ballast.materialized_view_refresh_queue x where x.matview = r.matview) q on true
  left join lateral (
    select ballast.request_flag_deadline(r.request_flag) - ballast.refresh_request_granularity(r.debounce) as requested) f on true
$$ language sql volatile;
comment on function ballast.matview_requests() is
  E'Each registered view''s pending requests, from its queue rows and its request flag: oldest, newest, row count; with its settings and backoff.';

---- matviews_due
---- Registered views due for a refresh at a given time, most urgent first, and why.
create or replace function ballast.matviews_due(at timestamptz default now())
returns table (matview regclass, why text, pending_since timestamptz, last_requested_at timestamptz, requests bigint) as $$
  select p.matview,
         case when not p.populated then 'never populated'
              when p.oldest <= at - p.max_delay then format('max_delay %s passed since the oldest request', p.max_delay)
              else format('debounce %s passed since the last request', p.debounce) end,
         p.oldest, p.newest, p.n
  from ballast.matview_requests() p
  where (p.next_attempt_at is null or p.next_attempt_at <= at)
    and (not p.populated or p.newest <= at - p.debounce or p.oldest <= at - p.max_delay)
  order by p.populated, p.oldest
$$ language sql volatile;
comment on function ballast.matviews_due(timestamptz) is
  E'Registered views due at the given time: never populated, or debounce passed since the last request, or max_delay since the oldest; views in failure backoff are not due.';

---- claim_matview_refresh
---- Takes a due view's pending requests (flag to 0, rows deleted) and leaves one row marking the claim.
-- The caller holds the view's refresh lock. The marking row keeps the view pending until the refresh
-- succeeds and deletes it: a processor cancelled or crashed between its claim and its refresh loses nothing.
create or replace function ballast.claim_matview_refresh(matview regclass, at timestamptz default now())
returns table (requests int, oldest_request_at timestamptz, why text, claim_row bigint) as $$
declare
  due record;
  flag regclass;
  n int;
  oldest timestamptz;
  marker bigint;
begin
  select d.why, d.pending_since into due from ballast.matviews_due(at) d where d.matview = claim_matview_refresh.matview;
  if not found then
    return;
  end if;
  select r.request_flag into flag from ballast.registered_matviews r where r.matview = claim_matview_refresh.matview;
  perform setval(flag, 0);  -- at once, outside this transaction: writers from now on record new requests
  with claimed as (
    delete from ballast.materialized_view_refresh_queue q where q.matview = claim_matview_refresh.matview
    returning q.requested_at)
  select count(*)::int, least(min(claimed.requested_at), due.pending_since) into n, oldest from claimed;
  insert into ballast.materialized_view_refresh_queue (matview, requested_at)
  values (claim_matview_refresh.matview, coalesce(oldest, at)) returning id into marker;
  return query select n, oldest, due.why, marker;
end;
$$ language plpgsql volatile;
comment on function ballast.claim_matview_refresh(regclass, timestamptz) is
  E'Claim a view''s pending requests if it is due: flag set to 0, queue rows replaced by one row that the successful refresh deletes. Returns how many rows, the oldest request, why it was due, the marking row. The caller must hold the view''s refresh lock.';

---- wait_for_source_writers
---- Waits until every transaction holding a write lock on one of the view's sources now has ended (at most max_wait).
create or replace function ballast.wait_for_source_writers(matview regclass, max_wait interval)
returns table (writers int, still_open int, waited interval) as $$
declare
  sources oid[];
  first_seen text[];
  open text[];
  started timestamptz := clock_timestamp();
begin
  select array_agg(s::oid) into sources
  from ballast.registered_matviews r, unnest(r.depends_on) s where r.matview = wait_for_source_writers.matview;
  loop
    -- A writer's locks are released only after its commit is visible to new snapshots.
    select array_agg(distinct l.virtualtransaction) into open
    from pg_catalog.pg_locks l
    where l.locktype = 'relation'
      and l.database = (select d.oid from pg_catalog.pg_database d where d.datname = current_database())
      and l.relation = any(sources) and l.granted and l.pid is distinct from pg_catalog.pg_backend_pid()
      and l.mode in ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
      and (first_seen is null or l.virtualtransaction = any(first_seen));
    if first_seen is null then
      first_seen := coalesce(open, '{}');
    end if;
    exit when open is null or clock_timestamp() - started >= max_wait;
    perform pg_catalog.pg_sleep(0.005);
  end loop;
  return query select cardinality(first_seen), coalesce(cardinality(open), 0), clock_timestamp() - started;
end;
$$ language plpgsql volatile;
comment on function ballast.wait_for_source_writers(regclass, interval) is
  E'The processor''s barrier between claiming a view''s requests and refreshing it: waits for the transactions that hold a write lock on a source now (writers that may have skipped queueing because a request was pending).';

---- refresh_registered_matview
---- Refreshes one view now (CONCURRENTLY when possible), logs it, and on failure keeps it pending with backoff.
create or replace function ballast.refresh_registered_matview(
  matview regclass, requests int default 0, oldest_request_at timestamptz default null,
  note text default null, keep_pending boolean default false, claim_row bigint default null)
returns boolean as $$
declare
  concurrent_ok boolean;
  why_not text;
  started timestamptz;
  finished timestamptz;
  err text;
begin
  perform ballast.assert_matview(refresh_registered_matview.matview, 'refresh_registered_matview');
  select m.concurrent_ok, m.reason into concurrent_ok, why_not
  from ballast.check_matview_unique_indexes() m where m.matview = refresh_registered_matview.matview;
  -- A plain refresh takes an ACCESS EXCLUSIVE lock: do not queue readers behind a long wait for it.
  perform set_config('lock_timeout', coalesce(nullif(current_setting('ballast.refresh_lock_timeout', true), ''), '10s'), true);
  started := clock_timestamp();
  begin
    execute format('refresh materialized view %s %s', case when concurrent_ok then 'concurrently' else '' end,
                   refresh_registered_matview.matview);
  exception when others then
    err := sqlstate || ': ' || sqlerrm;
  end;
  finished := clock_timestamp();
  insert into ballast.mv_refresh_log (matview, started_at, finished_at, mode, ok, error, detail, requests, oldest_request_at)
  values (refresh_registered_matview.matview, started, finished, case when concurrent_ok then 'concurrent' else 'plain' end,
          err is null, err, concat_ws('; ', case when not concurrent_ok then 'plain: ' || why_not end, note),
          coalesce(refresh_registered_matview.requests, 0), refresh_registered_matview.oldest_request_at);
  if err is null then
    update ballast.registered_matviews r set consecutive_failures = 0, next_attempt_at = null
    where r.matview = refresh_registered_matview.matview and (r.consecutive_failures, r.next_attempt_at) is distinct from (0, null);
    delete from ballast.materialized_view_refresh_queue q where q.id = refresh_registered_matview.claim_row;
    if keep_pending then  -- writers still open: their writes may not be in this refresh
      insert into ballast.materialized_view_refresh_queue (matview, requested_at) values (refresh_registered_matview.matview, finished);
    end if;
  else
    update ballast.registered_matviews r
    set consecutive_failures = r.consecutive_failures + 1,
        next_attempt_at = finished + ballast.refresh_backoff(r.consecutive_failures + 1)
    where r.matview = refresh_registered_matview.matview;
    -- Still stale: it stays pending with the age of its oldest request (max_delay keeps counting), through
    -- the claim's row, or a new one when there was no claim.
    if refresh_registered_matview.claim_row is null then
      insert into ballast.materialized_view_refresh_queue (matview, requested_at)
      values (refresh_registered_matview.matview, coalesce(refresh_registered_matview.oldest_request_at, started));
    end if;
  end if;
  return err is null;
end;
$$ language plpgsql volatile;
comment on function ballast.refresh_registered_matview(regclass, int, timestamptz, text, boolean, bigint) is
  E'One refresh of a registered view, logged in mv_refresh_log: CONCURRENTLY when populated with a usable unique index, else plain (the log says why). A failure is logged, the view stays pending and is retried after ballast.refresh_backoff().';

---- process_materialized_view_refreshes
---- The processor (pg_cron, every minute): refreshes each due view once, one processor per view, committing between views.
create or replace procedure ballast.process_materialized_view_refreshes(max_runtime interval default '50 seconds')
as $$
declare
  deadline timestamptz;
  tried regclass[] := '{}';
  v regclass;
  claimed record;
  writers record;
  max_wait interval := coalesce(nullif(current_setting('ballast.refresh_writer_wait', true), ''), '10s')::interval;
begin
  if max_runtime is null or max_runtime <= interval '0' then
    raise exception using errcode = '22023',
      message = format('process_materialized_view_refreshes: max_runtime must be a positive interval, got %s', coalesce(max_runtime::text, 'null')),
      hint = 'e.g. ''50 seconds'' when pg_cron calls it every minute.';
  end if;
  deadline := clock_timestamp() + max_runtime;
  perform ballast.release_own_refresh_locks();
  -- requests for views that are no longer registered (unregistered while a writer was in flight)
  delete from ballast.materialized_view_refresh_queue q
  where not exists (select from ballast.registered_matviews r where r.matview = q.matview);
  commit;
  loop
    exit when clock_timestamp() >= deadline;
    v := (select d.matview from ballast.matviews_due(clock_timestamp()) d where not (d.matview = any(tried)) limit 1);
    exit when v is null;
    tried := tried || v;  -- each view at most once per call: a failing view never loops
    continue when not ballast.try_lock_matview_refresh(v);  -- another processor is refreshing it
    claimed := null;
    select c.requests, c.oldest_request_at, c.why, c.claim_row into claimed
    from ballast.claim_matview_refresh(v, clock_timestamp()) c;
    commit;  -- writers now find the flag at 0 and record new requests
    if claimed.why is null then  -- refreshed by another processor in the meantime
      perform ballast.unlock_matview_refresh(v);
      continue;
    end if;
    select w.writers, w.still_open, w.waited into writers from ballast.wait_for_source_writers(v, max_wait) w;
    commit;  -- the refresh below takes its snapshot after those writers ended, whatever the isolation level
    perform ballast.refresh_registered_matview(v, claimed.requests, claimed.oldest_request_at,
      concat_ws('; ', claimed.why,
        case when writers.writers > 0 then format('waited %s s for %s writer transaction(s)',
                                                  round(extract(epoch from writers.waited)::numeric, 3), writers.writers) end,
        case when writers.still_open > 0 then format('%s writer transaction(s) still open after %s: kept pending',
                                                     writers.still_open, max_wait) end),
      writers.still_open > 0, claimed.claim_row);
    commit;
    perform ballast.unlock_matview_refresh(v);
  end loop;
  -- the refresh log's retention (30 days) is the cleanup capability's built-in policy on mv_refresh_log
end;
$$ language plpgsql;
comment on procedure ballast.process_materialized_view_refreshes(interval) is
  E'Refresh every due registered view (once each per call, most urgent first), one processor per view at a time, committing after each. CALL it outside a transaction block; pg_cron runs it every minute.';

---- matview_status
---- Per registered view: pending since, last refresh, staleness, last error, whether CONCURRENTLY works.
create or replace view ballast.matview_status as
  select r.matview,
         c.relispopulated as populated,
         p.oldest as pending_since,
         p.newest as last_requested_at,
         coalesce(p.n, 0) as pending_requests,
         good.started_at as last_refresh_at,          -- the data is as of (at least) this moment
         good.duration as last_refresh_duration,
         case when c.oid is null or not c.relispopulated then null
              when p.oldest is null then interval '0'
              else greatest(now() - p.oldest, interval '0') end as staleness,
         last.ok as last_attempt_ok,
         case when not last.ok then last.error end as last_error,
         r.consecutive_failures,
         r.next_attempt_at,
         ci.concurrent_ok,
         ci.reason as concurrent_reason,
         lk.pid as refreshing_pid,
         r.debounce, r.max_delay, r.depends_on, r.request_flag
  from ballast.registered_matviews r
  left join pg_catalog.pg_class c on c.oid = r.matview
  left join ballast.matview_requests() p on p.matview = r.matview
  left join lateral (
    select l.started_at, l.duration from ballast.mv_refresh_log l
    where l.matview = r.matview and l.ok order by l.started_at desc limit 1) good on true
  left join lateral (
    select l.ok, l.error from ballast.mv_refresh_log l
    where l.matview = r.matview order by l.started_at desc limit 1) last on true
  left join ballast.check_matview_unique_indexes() ci on ci.matview = r.matview
  left join pg_catalog.pg_locks lk
    on lk.locktype = 'advisory' and lk.classid = 1650551923 and lk.objid = r.matview::oid and lk.objsubid = 2
   and lk.granted and lk.database = (select d.oid from pg_catalog.pg_database d where d.datname = current_database());
comment on view ballast.matview_status is
  E'One row per registered materialized view: pending since, last refresh, staleness (age of the oldest pending request), last error, backoff, whether CONCURRENTLY works, which backend is refreshing it.';

---- verify__refresh_queue
---- verify_migration_success() checks: triggers on every source, the pg_cron job, no view failing repeatedly.
create or replace function ballast.verify__refresh_queue()
returns table (check_name text, ok boolean, detail text) as $$
declare
  job record;
begin
  if to_regclass('cron.job') is null then
    return query select 'refresh_queue cron job'::text, false,
      'pg_cron is not installed in this database: process_materialized_view_refreshes() never runs'::text;
  else
    execute $q$select j.jobid, j.schedule, j.active, j.command from cron.job j
               where j.jobname = 'ballast_refresh_matviews' order by j.jobid limit 1$q$ into job;
    return query select 'refresh_queue cron job'::text, coalesce(job.active, false),
      case when job.jobid is null then 'missing: sql/refresh_queue.sql schedules ballast_refresh_matviews'
           when not job.active then format('job %s is inactive: select cron.alter_job(%s, active => true)', job.jobid, job.jobid)
           else format('job %s runs %L on %L', job.jobid, job.command, job.schedule) end;
  end if;
  return query
    select 'refresh_queue triggers ' || coalesce(ballast.relation_name(r.matview), r.matview::oid::text),
           c.oid is not null and missing.list is null and to_regclass(r.request_flag::text) is not null,
           case when c.oid is null then format('view %s no longer exists: select ballast.unregister_matview(%s)', r.matview::oid, r.matview::oid)
                when to_regclass(r.request_flag::text) is null then format('request flag %s is missing: unregister and register the view again', r.request_flag)
                when missing.list is not null then format('no enabled, current refresh trigger on %s: select ballast.register_matview(%L, %L)',
                                                          missing.list, r.matview::text, r.depends_on::text)
                else format('on %s', array_to_string(r.depends_on::text[], ', ')) end
    from ballast.registered_matviews r
    left join pg_catalog.pg_class c on c.oid = r.matview and c.relkind = 'm'
    left join lateral (
      select string_agg(s::text, ', ') as list from unnest(r.depends_on) s
      where not exists (select from ballast.refresh_triggers() t
                        where t.source = s and t.request_flag = r.request_flag and t.enabled and t.tgtype = 62)) missing on true
    union all
    select 'refresh_queue failures ' || coalesce(ballast.relation_name(r.matview), r.matview::oid::text),
           r.consecutive_failures < 3,
           case when r.consecutive_failures = 0 then 'last refresh ok or none yet'
                else format('%s consecutive failed refresh(es), next attempt %s; last error: %s', r.consecutive_failures,
                            r.next_attempt_at,
                            (select l.error from ballast.mv_refresh_log l where l.matview = r.matview and not l.ok
                             order by l.started_at desc limit 1)) end
    from ballast.registered_matviews r;
end;
$$ language plpgsql stable;
comment on function ballast.verify__refresh_queue() is
  E'Refresh-queue checks for verify_migration_success(): the pg_cron job exists and is active, every registered view has its triggers on all sources, none failed its last 3 refreshes.';

-- The processor, every minute, in the database pg_cron lives in (not in the shadow database).
select ballast.schedule_job('ballast_refresh_matviews', '* * * * *', 'call ballast.process_materialized_view_refreshes()');

---- metrics__refresh_queue
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): pending requests, seconds since each view's last good refresh.
create or replace function ballast.metrics__refresh_queue()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_matview_refresh_pending', 'Rows in the materialized-view refresh queue', '{}'::jsonb, count(*)::float8
  from ballast.materialized_view_refresh_queue
  union all
  select 'ballast_matview_seconds_since_refresh', 'Seconds since the last successful refresh of a materialized view',
         jsonb_build_object('view', l.matview::text), extract(epoch from now() - max(l.finished_at))::float8
  from ballast.mv_refresh_log l where l.ok group by l.matview::text
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__refresh_queue() is
  E'Gauges for /metrics: rows in the refresh queue; seconds since each view''s last successful refresh.';

-- sql/invalidation.sql
-- Cache invalidation (capability: invalidation): semantic cache tags ('fund:42', 'funds') flow
--   write → statement-level trigger → ballast.cache_invalidation_inbox (append only)
--         → drain_cache_invalidation_queue(): merge into ballast.cache_invalidation_queue (deduplicated)
--           and claim a batch with a lease → worker task deliver_cache_invalidations → sinks (HTTP purge,
--           Redis tag sets, log) → ack, or backoff and finally ballast.cache_invalidation_dead_letters.
-- Tables: migrations (inbox, queue, dead letters, triggers registry). docs/ARCHITECTURE.md has the long form.
--
-- Why it is shaped like this:
-- * The write path appends a row (one per statement, or per row for statements of up to 16 rows) to a
--   table with no index and no sequence, runs as the writer (no SECURITY DEFINER), and does
--   nothing else: no dedup lookup, no wake-up, no lock anyone else waits for. Each of those cost a single-row
--   UPDATE a measurable share of its time (bench/scenarios/invalidation.ts); the worker polls instead.
-- * Dedup happens when the worker's drain merges the inbox, against queue rows nobody has claimed yet.
--   The inbox rows it merges are committed, and the pending row that absorbs them is claimed by this or a
--   later transaction, so a purge never overtakes the commit it is for.
-- * The queue's functions keep index plans whatever the statistics say (enable_seqscan, and for the claim
--   enable_sort and enable_bitmapscan, off). The queue is usually near empty, and PL/pgSQL keeps one
--   generic plan per session: planned on an empty queue, the drain's update of the claimed ids scanned the
--   whole queue per batch for as long as a burst lasted (bench invalidation part 3 from a freshly emptied
--   queue: 4.8k tags/s, 42.6k with the index). Those settings reach the merge the drain calls, whose scan
--   of the inbox (no index) then carries the planner's "disabled" penalty, far above jit_above_cost: drain
--   and merge run with jit = off, or every batch compiles with LLVM (~70% of the time; 7k tags/s).
-- * Triggers are generated per table with static SQL, so PL/pgSQL caches their plans (no EXECUTE, no
--   re-planning per statement). A statement with few rows renders every template in one INSERT; a big
--   one counts distinct placeholder values per template and collapses above collapse_above.

select ballast.owner_only_policy('ballast.cache_invalidation_inbox');
-- The generated trigger functions run as the writer, so every role may append to the inbox, but only
-- from inside a trigger: a session cannot queue purges of its choosing with a plain INSERT. Tags are
-- checked (1..512 characters) where the merge reads them.
grant insert on ballast.cache_invalidation_inbox to public;
drop policy if exists append_from_triggers on ballast.cache_invalidation_inbox;
create policy append_from_triggers on ballast.cache_invalidation_inbox for insert to public
  with check (pg_trigger_depth() > 0);
select ballast.owner_only_policy('ballast.cache_invalidation_queue');
select ballast.owner_only_policy('ballast.cache_invalidation_dead_letters');
select ballast.owner_only_policy('ballast.cache_invalidation_triggers');

---- wake_cache_invalidation_worker
---- Queues the delivery job unless one is already waiting to run (checked without taking a lock).
create or replace function ballast.wake_cache_invalidation_worker()
returns boolean as $$
begin
  -- A locked job is running; graphile-worker gives the key of a locked job to the new one.
  if exists (select 1 from ballast_worker.jobs j
             where j.key = 'ballast:deliver_cache_invalidations' and j.locked_at is null
               and j.attempts < j.max_attempts and j.run_at <= now() + interval '1 second') then
    return false;
  end if;
  perform ballast_worker.add_job('deliver_cache_invalidations', '{}'::json,
    job_key => 'ballast:deliver_cache_invalidations', job_key_mode => 'preserve_run_at');
  return true;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.wake_cache_invalidation_worker() is
  E'Queue the deliver_cache_invalidations worker job now unless one is already waiting; true when it queued one. The worker also polls, so this only shortens the wait after a restart or a requeue.';

---- check_cache_tag
---- Raises 22004/22023 unless the tag is 1..512 characters.
create or replace function ballast.check_cache_tag(tag text, what text default 'tag')
returns void as $$
begin
  if tag is null then
    raise exception using errcode = '22004', message = format('%s must not be null', what),
      hint = 'A cache tag names what to invalidate, e.g. ''fund:42'' or ''funds''.';
  end if;
  if length(tag) not between 1 and 512 then
    raise exception using errcode = '22023',
      message = format('%s must be 1..512 characters, got %s: %L', what, length(tag),
                       left(tag, 40) || case when length(tag) > 40 then '…' else '' end),
      hint = 'Use a short semantic name such as ''fund:42''; hash long keys.';
  end if;
end;
$$ language plpgsql immutable;
comment on function ballast.check_cache_tag(text, text) is
  E'Raise 22004 (null) or 22023 (empty, or over 512 characters) for an unusable cache tag.';

---- enqueue_cache_invalidation
---- Queues one tag for delivery unless the same tag is already pending within the window.
create or replace function ballast.enqueue_cache_invalidation(tag text, dedup_window_minutes int default 1)
returns boolean as $$
begin
  perform ballast.check_cache_tag(tag);
  if dedup_window_minutes is null or dedup_window_minutes not between 0 and 1440 then
    raise exception using errcode = '22023',
      message = format('dedup_window_minutes must be 0..1440, got %s', coalesce(dedup_window_minutes::text, 'null')),
      hint = '0 disables deduplication; the default is 1.';
  end if;
  if dedup_window_minutes > 0 and exists (
       select 1 from ballast.cache_invalidation_queue q
       where q.tag = enqueue_cache_invalidation.tag and q.processed_at is null
         and (q.leased_until is null or q.leased_until < now())
         and q.enqueued_at > now() - make_interval(mins => dedup_window_minutes)) then
    -- Covered by a pending row. A worker may claim that row before this transaction commits, so leave a
    -- note in the inbox: the next merge folds it into a pending row, or queues it again if there is none.
    insert into ballast.cache_invalidation_inbox (tags) values (array[tag]);
    return false;
  end if;
  insert into ballast.cache_invalidation_queue (tag) values (tag);
  return true;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.enqueue_cache_invalidation(text, int) is
  E'Queue a cache tag for invalidation. Returns false when an equal tag, enqueued within dedup_window_minutes and not yet claimed by a worker, is pending and covers it (0 disables deduplication).';

---- cache_tag_template
---- Parses one invalidate_on_change template against a table: SQL expression, collapsed tag, columns.
create or replace function ballast.cache_tag_template(tbl regclass, template text,
  out expr text, out collapsed text, out columns text[], out per_row boolean)
as $$
declare
  v_body text := template;
  v_lits text[];
  v_names text[];
  v_cols text[];
  v_max int;
  i int;
begin
  perform ballast.check_cache_tag(template, 'tag template');
  if position('=>' in template) > 0 then
    v_body := btrim(split_part(template, '=>', 1));
    collapsed := btrim(substr(template, position('=>' in template) + 2));
    if collapsed = '' or collapsed ~ '[{}]' or position('=>' in collapsed) > 0 then
      raise exception using errcode = '22023',
        message = format('tag template %L: the collapsed tag after => must be a plain tag without {placeholders}, got %L', template, collapsed),
        hint = 'Example: ''fund:{id} => funds:all''.';
    end if;
  end if;
  v_names := array(select m[1] from regexp_matches(v_body, '\{([^{}]*)\}', 'g') as m);
  if regexp_replace(v_body, '\{[^{}]*\}', '', 'g') ~ '[{}]' then
    raise exception using errcode = '22023',
      message = format('tag template %L has an unbalanced { or }', template),
      hint = 'Placeholders look like {column_name}, e.g. ''org:{org_id}:funds''.';
  end if;
  v_cols := array(select a.attname::text from pg_attribute a
                  where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped order by a.attnum);
  for i in 1 .. coalesce(array_length(v_names, 1), 0) loop
    if not v_names[i] = any(v_cols) then
      raise exception using errcode = '42703',
        message = format('tag template %L: table %s has no column %L', template, tbl, v_names[i]),
        hint = format('Columns of %s: %s.', tbl, array_to_string(v_cols, ', '));
    end if;
  end loop;
  v_lits := regexp_split_to_array(v_body, '\{[^{}]*\}');
  collapsed := coalesce(collapsed, array_to_string(v_lits, ''));
  if collapsed = '' then
    raise exception using errcode = '22023',
      message = format('tag template %L is nothing but placeholders, so it has no collapsed form', template),
      hint = format('Name the tag a bulk change enqueues instead, e.g. ''%s => all''.', v_body);
  end if;
  perform ballast.check_cache_tag(collapsed, format('collapsed tag of template %L', template));
  columns := array(select distinct unnest(v_names) order by 1);
  per_row := cardinality(v_names) > 0;
  if not per_row then
    perform ballast.check_cache_tag(v_body, 'tag template');
    expr := quote_literal(v_body);
    return;
  end if;
  -- Rendered from row d; a NULL placeholder renders NULL (no tag). The longest text each placeholder's
  -- type can print: when the tag cannot pass 512 characters there is nothing to check on the write path.
  v_max := length(array_to_string(v_lits, ''));
  expr := quote_literal(v_lits[1]);
  for i in 1 .. array_length(v_names, 1) loop
    expr := expr || format(' || (d.%I)::text', v_names[i]) || case when v_lits[i + 1] <> '' then format(' || %L', v_lits[i + 1]) else '' end;
    v_max := v_max + (
      select case t.typname
               when 'int2' then 6 when 'int4' then 11 when 'int8' then 20 when 'oid' then 10 when 'bool' then 5
               when 'uuid' then 36 when 'date' then 16 when 'timestamp' then 32 when 'timestamptz' then 40
               when 'float4' then 16 when 'float8' then 24
               when 'varchar' then nullif(a.atttypmod, -1) - 4 when 'bpchar' then nullif(a.atttypmod, -1) - 4
             end
      from pg_attribute a join pg_type t on t.oid = a.atttypid
      where a.attrelid = tbl and a.attname = v_names[i]);
  end loop;
  if v_max is null or v_max > 512 then
    -- may come out too long: fall back to the collapsed tag, an invalidation trigger must never fail the write
    expr := format('case when length(%1$s) > 512 then %2$L else %1$s end', expr, collapsed);
  end if;
end;
$$ language plpgsql stable;
comment on function ballast.cache_tag_template(regclass, text) is
  E'Parse a tag template for invalidate_on_change(): its SQL expression over row d (NULL when a placeholder is NULL), collapsed tag, placeholder columns; rejects unknown columns (42703) and malformed templates (22023).';

---- invalidate_on_change
---- Installs statement-level triggers on a table that enqueue tags rendered from its changed rows.
create or replace function ballast.invalidate_on_change(tbl regclass, tags text[], collapse_above int default 1000)
returns void as $$
declare
  v_kind "char";
  v_t record;
  v_templates jsonb := '[]';
  v_fn text;
  v_old_fn text;
  v_owner name;
  v_unique_sets text[];
  v_cols text[] := '{}';
  v_col_list text;
  v_fixed text[] := '{}';          -- the tags TRUNCATE enqueues: every collapsed and constant tag
  v_row_exprs text[];
  v_parts text[];
  v_guard text;
  v_distinct text;
  v_src text;
  v_count_src text;
  v_uncounted_max int; -- the most rows a statement may change and render every template without counting (UPDATE: OLD+NEW)
  v_body text := '';
  v_op text;
  i int;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'invalidate_on_change: table must not be null';
  end if;
  select c.relkind into v_kind from pg_class c where c.oid = tbl;
  if v_kind not in ('r', 'p') then
    raise exception using errcode = '42809',
      message = format('invalidate_on_change: %s is not a table (relkind %s)', tbl, v_kind),
      hint = 'Register the table the view or materialized view reads from.';
  end if;
  if tags is null or cardinality(tags) = 0 then
    raise exception using errcode = '22023',
      message = format('invalidate_on_change(%s): give at least one tag template, got %s', tbl, coalesce(tags::text, 'null')),
      hint = 'Example: array[''fund:{id}'', ''org:{org_id}:funds'', ''funds''].';
  end if;
  if collapse_above is null or collapse_above < 1 then
    raise exception using errcode = '22023',
      message = format('invalidate_on_change(%s): collapse_above must be at least 1, got %s', tbl, coalesce(collapse_above::text, 'null')),
      hint = 'The number of distinct tags one statement may enqueue per template before it enqueues the collapsed tag instead; default 1000.';
  end if;

  -- Column sets that identify a row (unique, non-partial, plain NOT NULL columns): a template using all
  -- of one renders a distinct tag per row, so a statement with more rows collapses it without counting.
  v_unique_sets := array(
    select string_agg(a.attname::text, ',' order by a.attname)
    from pg_index x
    cross join lateral unnest(x.indkey::int2[]) k(attnum)
    join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum
    where x.indrelid = tbl and x.indisunique and x.indpred is null and x.indexprs is null
    group by x.indexrelid
    having bool_and(a.attnotnull));

  for i in 1 .. cardinality(tags) loop
    select * into v_t from ballast.cache_tag_template(tbl, tags[i]);
    v_templates := v_templates || jsonb_build_object('expr', v_t.expr, 'collapsed', v_t.collapsed,
      'columns', to_jsonb(v_t.columns), 'per_row', v_t.per_row,
      'unique', exists (select 1 from unnest(v_unique_sets) s where string_to_array(s, ',') <@ v_t.columns));
    v_fixed := v_fixed || v_t.collapsed;   -- a constant template's collapsed form is itself
    if v_t.per_row then
      v_cols := v_cols || v_t.columns;
    end if;
  end loop;
  v_col_list := coalesce((select string_agg(format('%I', c), ', ') from (select distinct unnest(v_cols) as c order by 1) x), '');

  v_fn := format('tg__invalidate_cache__%s_%s', left((select relname from pg_class where oid = tbl), 30), tbl::oid);
  select t.function_name into v_old_fn from ballast.cache_invalidation_triggers t where t.tbl = invalidate_on_change.tbl;

  foreach v_op in array array['INSERT', 'UPDATE', 'DELETE'] loop
    v_src := case v_op when 'INSERT' then 'ballast_new' when 'DELETE' then 'ballast_old'
                       else format('(select %1$s from ballast_new union all select %1$s from ballast_old)', v_col_list) end;
    v_count_src := case v_op when 'DELETE' then 'ballast_old' else 'ballast_new' end;
    v_uncounted_max := case v_op when 'UPDATE' then collapse_above / 2 else collapse_above end;
    v_row_exprs := '{}';
    v_parts := '{}';
    for v_t in select * from jsonb_to_recordset(v_templates)
                 as x(expr text, collapsed text, columns text[], per_row boolean, "unique" boolean) loop
      if not v_t.per_row then
        v_row_exprs := v_row_exprs || format('(%s::text)', v_t.expr);
        v_parts := v_parts || format('select %s::text', v_t.expr);
        continue;
      end if;
      v_row_exprs := v_row_exprs || format('(%s)', v_t.expr);  -- NULL when a placeholder is: the merge drops it
      v_guard := (select string_agg(format('d.%I is not null', c), ' and ') from unnest(v_t.columns) c);
      -- big statements: distinct placeholder values first (cheap to hash), then at most
      -- collapse_above + 1 tags rendered from them, or the collapsed tag
      v_distinct := format('select distinct %s from %s d where %s',
        (select string_agg(format('d.%I', c), ', ') from unnest(v_t.columns) c), v_src, v_guard);
      if v_t."unique" then
        v_parts := v_parts || format('select unnest(case when n > %1$s then array[%2$L] '
                                     'else array(select %3$s from (%4$s) d) end)',
                                     collapse_above, v_t.collapsed, v_t.expr, v_distinct);
      else
        v_parts := v_parts || format('select unnest(case when cardinality(a.t) > %1$s then array[%2$L] else a.t end) '
                                     'from (select array(select %3$s from (%4$s limit %5$s) d) as t) a',
                                     collapse_above, v_t.collapsed, v_t.expr, v_distinct, collapse_above + 1);
      end if;
    end loop;
    -- Three sizes of statement. Up to 16 rows (the common single-row write): one inbox row per
    -- transition row, an array rendered per row with no aggregate, the cheapest plan there is. Up to
    -- collapse_above rows (half that for UPDATE, which renders OLD and NEW): cannot produce more than
    -- collapse_above tags from one template, so one aggregated row, no counting. The counts in their WHERE
    -- are initplans that gate the scans, so a bigger statement skips them and takes the third path.
    v_body := v_body || format($f$
  %1$s TG_OP = %2$L then
    insert into ballast.cache_invalidation_inbox (tags)
    select array[%4$s] from %3$s d
    where (select count(*) from %5$s) <= %8$s;
    if found then
      return null;
    end if;
    insert into ballast.cache_invalidation_inbox (tags)
    select array_agg(v.tag) from %3$s d, lateral (values %4$s) as v(tag)
    where (select count(*) from %5$s) <= %6$s
    having count(*) > 0;
    if found then
      return null;
    end if;
    select count(*) into n from %5$s;
    if n <= %6$s then
      return null;  -- no rows, or no tag rendered
    end if;
    insert into ballast.cache_invalidation_inbox (tags)
    select array_agg(distinct t.tag) from (
        %7$s) as t(tag)
    where t.tag is not null
    having count(*) > 0;$f$,
      case v_op when 'INSERT' then 'if' else 'elsif' end, v_op, v_src, array_to_string(v_row_exprs, ', '),
      v_count_src, v_uncounted_max, array_to_string(v_parts, E'\n        union all '), least(16, v_uncounted_max));
  end loop;

  execute format($f$
create or replace function ballast.%I() returns trigger as $fn$
declare
  n bigint;
begin%s
  else -- TRUNCATE
    insert into ballast.cache_invalidation_inbox (tags) values (%L::text[]);
  end if;
  return null;
end;
$fn$ language plpgsql volatile$f$,
    v_fn, v_body, v_fixed);
  execute format('comment on function ballast.%I() is %L', v_fn,
    format('Generated by ballast.invalidate_on_change(%s, %s, %s): re-run that to change it, stop_invalidating() to remove it.',
           (select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = tbl),
           tags, collapse_above));
  -- The trigger function runs as the writer (SECURITY DEFINER cost a single-row UPDATE ~8 us of its
  -- ~20, bench invalidation part 2); the inbox lets any role append, from inside a trigger only. It is
  -- owned by the inbox owner so only that role (and superusers) can replace it.
  select r.rolname into v_owner from pg_class c join pg_roles r on r.oid = c.relowner
  where c.oid = 'ballast.cache_invalidation_inbox'::regclass;
  execute format('alter function ballast.%I() owner to %I', v_fn, v_owner);
  execute format('revoke all on function ballast.%I() from public', v_fn);

  execute format('drop trigger if exists _500_invalidate_cache_insert on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_update on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_delete on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_truncate on %s', tbl);
  execute format('create trigger _500_invalidate_cache_insert after insert on %s referencing new table as ballast_new for each statement execute function ballast.%I()', tbl, v_fn);
  execute format('create trigger _500_invalidate_cache_update after update on %s referencing old table as ballast_old new table as ballast_new for each statement execute function ballast.%I()', tbl, v_fn);
  execute format('create trigger _500_invalidate_cache_delete after delete on %s referencing old table as ballast_old for each statement execute function ballast.%I()', tbl, v_fn);
  execute format('create trigger _500_invalidate_cache_truncate after truncate on %s for each statement execute function ballast.%I()', tbl, v_fn);
  if v_old_fn is not null and v_old_fn <> v_fn then
    execute format('drop function if exists ballast.%I()', v_old_fn);
  end if;

  insert into ballast.cache_invalidation_triggers as t (tbl, tags, collapse_above, function_name)
  values (tbl, tags, collapse_above, v_fn)
  on conflict on constraint cache_invalidation_triggers_pkey do update
    set tags = excluded.tags, collapse_above = excluded.collapse_above, function_name = excluded.function_name,
        registered_at = now();
end;
$$ language plpgsql volatile set client_min_messages = warning; -- no "trigger does not exist, skipping" notices
comment on function ballast.invalidate_on_change(regclass, text[], int) is
  E'Enqueue cache tags when rows of a table change: templates like ''fund:{id}'' are filled from OLD and NEW rows by statement-level triggers; above collapse_above distinct tags per template one statement enqueues the collapsed tag (placeholders removed, or the tag after =>). Unknown columns raise 42703.';

---- stop_invalidating
---- Removes the triggers and generated function that invalidate_on_change installed on a table.
create or replace function ballast.stop_invalidating(tbl regclass)
returns boolean as $$
declare
  v_fn text;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'stop_invalidating: table must not be null';
  end if;
  delete from ballast.cache_invalidation_triggers t where t.tbl = stop_invalidating.tbl returning t.function_name into v_fn;
  execute format('drop trigger if exists _500_invalidate_cache_insert on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_update on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_delete on %s', tbl);
  execute format('drop trigger if exists _500_invalidate_cache_truncate on %s', tbl);
  if v_fn is not null then
    execute format('drop function if exists ballast.%I()', v_fn);
  end if;
  return v_fn is not null;
end;
$$ language plpgsql volatile set client_min_messages = warning;
comment on function ballast.stop_invalidating(regclass) is
  E'Undo invalidate_on_change() on a table: drop its triggers and generated function. False when it was not registered.';

---- merge_cache_invalidation_inbox
---- Moves inbox rows into the queue, skipping tags that an unclaimed pending row already covers.
create or replace function ballast.merge_cache_invalidation_inbox(max_rows int default 10000)
returns int as $$
declare
  v_n int;
begin
  if max_rows is null or max_rows < 1 then
    raise exception using errcode = '22023', message = format('max_rows must be at least 1, got %s', coalesce(max_rows::text, 'null'));
  end if;
  -- skip locked: concurrent drains merge different inbox rows instead of waiting for each other
  with moved as (
    delete from ballast.cache_invalidation_inbox i
    where i.ctid = any (array(select x.ctid from ballast.cache_invalidation_inbox x limit max_rows for update skip locked))
    returning i.tags, i.enqueued_at
  ), t as (
    select u.tag, min(m.enqueued_at) as enqueued_at
    from moved m cross join lateral unnest(m.tags) as u(tag)
    where length(u.tag) between 1 and 512   -- NULL: a NULL placeholder, no tag
    group by u.tag
  )
  insert into ballast.cache_invalidation_queue (tag, enqueued_at, next_attempt_at)
  select t.tag, t.enqueued_at, now() from t
  where (select true from ballast.cache_invalidation_queue q
         where q.tag = t.tag and q.processed_at is null
           and (q.leased_until is null or q.leased_until < now())
           and q.enqueued_at > now() - interval '1 minute' limit 1) is null;
  get diagnostics v_n = row_count;
  return v_n;
end;
$$ language plpgsql volatile set jit = off;
comment on function ballast.merge_cache_invalidation_inbox(int) is
  E'Move up to max_rows inbox rows (one per triggering statement) into cache_invalidation_queue, skipping tags an unclaimed pending row enqueued within the last minute already covers; returns the queue rows added. drain_cache_invalidation_queue() calls it.';

---- drain_cache_invalidation_queue
---- Merges the inbox, then claims up to batch_size due rows for lease_seconds (for update skip locked).
create or replace function ballast.drain_cache_invalidation_queue(batch_size int, lease_seconds int)
returns table (id bigint, tag text, attempts int) as $$
#variable_conflict use_column
begin
  if batch_size is null or batch_size not between 1 and 10000 then
    raise exception using errcode = '22023',
      message = format('batch_size must be 1..10000, got %s', coalesce(batch_size::text, 'null'));
  end if;
  if lease_seconds is null or lease_seconds not between 1 and 86400 then
    raise exception using errcode = '22023',
      message = format('lease_seconds must be 1..86400, got %s', coalesce(lease_seconds::text, 'null')),
      hint = 'Longer than one delivery takes; a crashed consumer''s rows come back after it.';
  end if;
  -- The worker's bookkeeping commits without waiting for the WAL flush: a claim, ack or failure lost in a
  -- crash only means a delivery repeats, which at-least-once allows. (This transaction only: the inbox
  -- rows it merges were committed by their writers with the writers' own setting.)
  perform set_config('synchronous_commit', 'off', true);
  perform ballast.merge_cache_invalidation_inbox(greatest(batch_size, 1000));
  -- = any(array(...)), not a join: the planner may hash-join a CTE against the whole queue
  return query
    update ballast.cache_invalidation_queue q
       set next_attempt_at = now() + make_interval(secs => lease_seconds),
           leased_until = now() + make_interval(secs => lease_seconds),
           attempts = q.attempts + 1
     where q.id = any (array(
             select d.id from ballast.cache_invalidation_queue d
             where d.processed_at is null and d.next_attempt_at <= now()
             order by d.id   -- enqueue order; leased and backing-off rows are skipped by the filter
             limit batch_size
             for update skip locked))
    returning q.id, q.tag, q.attempts;
end;
$$ language plpgsql volatile set jit = off
-- Claim in id order by walking the pending index, whatever the statistics say: right after a burst of
-- inserts they still say "empty", and a bitmap scan plus sort of every pending row per claim is 3x slower.
-- The same for the update of the claimed ids: without enable_seqscan = off it scanned the whole queue.
set enable_sort = off set enable_bitmapscan = off set enable_seqscan = off;
comment on function ballast.drain_cache_invalidation_queue(int, int) is
  E'Merge the trigger inbox, then claim up to batch_size due cache tags for lease_seconds (skip locked, so consumers run side by side). Ack or fail them; unacknowledged rows come back when the lease ends.';

---- ack_cache_invalidations
---- Marks claimed rows delivered.
create or replace function ballast.ack_cache_invalidations(ids bigint[])
returns int as $$
declare
  v_n int;
begin
  if ids is null then
    raise exception using errcode = '22004', message = 'ack_cache_invalidations: ids must not be null';
  end if;
  perform set_config('synchronous_commit', 'off', true); -- a lost ack repeats a delivery, nothing worse
  -- coalesce(...) rather than "processed_at is null": that would let the planner, misled by statistics
  -- taken when few rows were pending, walk a whole partial index instead of looking the ids up
  update ballast.cache_invalidation_queue
     set processed_at = now(), leased_until = null
   where id = any(ids) and coalesce(processed_at, 'infinity') = 'infinity';
  get diagnostics v_n = row_count;
  return v_n;
end;
$$ language plpgsql volatile
set enable_seqscan = off;  -- look the batch up by id, even when stale statistics call the queue empty
comment on function ballast.ack_cache_invalidations(bigint[]) is
  E'Mark claimed cache tags delivered; returns how many were still pending.';

---- fail_cache_invalidations
---- Records a failed delivery: exponential backoff with a cap, dead letter after max_retries failures.
create or replace function ballast.fail_cache_invalidations(ids bigint[], error text,
  backoff_base_ms int default 1000, backoff_max_ms int default 600000)
returns table (rescheduled int, dead_lettered int, next_attempt_at timestamptz) as $$
#variable_conflict use_column
declare
  v_error text := left(coalesce(nullif(error, ''), 'delivery failed (no error given)'), 2000);
begin
  if ids is null then
    raise exception using errcode = '22004', message = 'fail_cache_invalidations: ids must not be null';
  end if;
  if backoff_base_ms is null or backoff_base_ms < 1 or backoff_max_ms is null or backoff_max_ms < backoff_base_ms then
    raise exception using errcode = '22023',
      message = format('backoff must satisfy 1 <= backoff_base_ms <= backoff_max_ms, got %s and %s', backoff_base_ms, backoff_max_ms);
  end if;
  perform set_config('synchronous_commit', 'off', true); -- a lost failure repeats a delivery, nothing worse
  with gone as (
    delete from ballast.cache_invalidation_queue q
     where q.id = any(ids) and coalesce(q.processed_at, 'infinity') = 'infinity' and q.retry_count + 1 >= q.max_retries
    returning q.id, q.tag, q.enqueued_at, q.retry_count, q.attempts
  )
  insert into ballast.cache_invalidation_dead_letters (id, tag, enqueued_at, retry_count, attempts, last_error)
  select g.id, g.tag, g.enqueued_at, g.retry_count + 1, g.attempts, v_error from gone g;
  get diagnostics dead_lettered = row_count;
  -- failure n (1-based) waits base * 2^(n-1), at most backoff_max_ms
  with r as (
    update ballast.cache_invalidation_queue q
       set retry_count = q.retry_count + 1,
           last_error = v_error,
           leased_until = null,
           next_attempt_at = now() + make_interval(secs => least(backoff_max_ms::float8,
                                 backoff_base_ms * power(2::float8, least(q.retry_count, 40))) / 1000)
     where q.id = any(ids) and coalesce(q.processed_at, 'infinity') = 'infinity'  -- see ack_cache_invalidations
    returning q.next_attempt_at
  )
  select count(*)::int, min(r.next_attempt_at) into rescheduled, next_attempt_at from r;
  return next;
end;
$$ language plpgsql volatile
set enable_seqscan = off;  -- look the batch up by id, even when stale statistics call the queue empty
comment on function ballast.fail_cache_invalidations(bigint[], text, int, int) is
  E'Record a failed delivery of claimed cache tags: retry after backoff_base_ms * 2^(retry_count-1), capped at backoff_max_ms; after max_retries failures the row moves to cache_invalidation_dead_letters.';

---- requeue_cache_invalidation_dead_letters
---- Puts dead letters (all, or the given ids) back into the queue.
create or replace function ballast.requeue_cache_invalidation_dead_letters(ids bigint[] default null)
returns int as $$
declare
  v_n int;
begin
  with d as (
    delete from ballast.cache_invalidation_dead_letters dl where ids is null or dl.id = any(ids) returning dl.tag
  )
  insert into ballast.cache_invalidation_queue (tag) select distinct d.tag from d;
  get diagnostics v_n = row_count;
  if v_n > 0 then
    perform ballast.wake_cache_invalidation_worker();
  end if;
  return v_n;
end;
$$ language plpgsql volatile;
comment on function ballast.requeue_cache_invalidation_dead_letters(bigint[]) is
  E'Move dead-lettered cache tags (all, or those with the given ids) back into the queue with fresh retries; returns how many tags were queued.';

-- Delivered rows are deleted by the cleanup capability's built-in policy on cache_invalidation_queue
-- (an hour after delivery, every 5 minutes, in batches): one owner for every retention rule.
drop function if exists ballast.cleanup_cache_invalidations(interval);

-- Monitoring: one row.
create or replace view ballast.cache_invalidation_stats as
  select count(*) filter (where q.leased_until is null or q.leased_until < now()) as pending,
         count(*) filter (where q.next_attempt_at <= now()) as due,
         count(*) filter (where q.leased_until >= now()) as leased,
         count(*) filter (where q.retry_count > 0) as retried,
         (select count(*) from ballast.cache_invalidation_dead_letters) as dead,
         (select count(*) from ballast.cache_invalidation_inbox) as inbox,
         now() - least(min(q.enqueued_at), (select min(i.enqueued_at) from ballast.cache_invalidation_inbox i)) as oldest_pending_age,
         (select count(*) from ballast.cache_invalidation_queue d
           where d.processed_at > now() - interval '1 hour') as delivered_last_hour
  from ballast.cache_invalidation_queue q
  where q.processed_at is null;
comment on view ballast.cache_invalidation_stats is
  E'Cache invalidation at a glance: pending queue rows (not leased), due now, leased by a worker, retried (failed at least once), dead letters, inbox rows not yet merged, age of the oldest pending tag, delivered in the last hour.';

---- verify__invalidation
---- Checks: registered tables still have their triggers; no dead letters older than a day (a warning).
create or replace function ballast.verify__invalidation()
returns table (check_name text, ok boolean, detail text) as $$
#variable_conflict use_column
begin
  -- PL/pgSQL, not SQL: its body is checked when it runs, so sql/ORDER may list this file before verify.sql
  return query
  with want as (
    select t.tbl, t.function_name, t.tags, t.collapse_above, c.oid is not null as table_exists,
           array(select n from unnest(array['_500_invalidate_cache_insert', '_500_invalidate_cache_update',
                                            '_500_invalidate_cache_delete', '_500_invalidate_cache_truncate']) n
                 where not exists (select 1 from pg_trigger g join pg_proc p on p.oid = g.tgfoid
                                   where g.tgrelid = t.tbl and g.tgname = n and g.tgenabled <> 'D'
                                     and p.proname = t.function_name
                                     and p.pronamespace = 'ballast'::regnamespace)) as missing
    from ballast.cache_invalidation_triggers t
    left join pg_class c on c.oid = t.tbl
  )
  select 'invalidate_on_change ' || case when w.table_exists then ballast.qualified_name(w.tbl) else 'table oid ' || w.tbl::oid end,
         w.table_exists and cardinality(w.missing) = 0,
         case when not w.table_exists then
                format('the table (oid %s) no longer exists: delete from ballast.cache_invalidation_triggers where tbl = %s', w.tbl::oid, w.tbl::oid)
              when cardinality(w.missing) > 0 then
                format('missing or disabled: %s; re-run select ballast.invalidate_on_change(%L, %L, %s)',
                       array_to_string(w.missing, ', '), ballast.qualified_name(w.tbl), w.tags, w.collapse_above)
              else format('4 triggers, tags %s', array_to_string(w.tags, ' ')) end
  from want w
  union all
  -- triggers left behind on a table that is no longer registered
  select 'invalidate_on_change orphan trigger ' || g.tgname || ' on ' || ballast.qualified_name(g.tgrelid), false,
         format('not registered in ballast.cache_invalidation_triggers: drop trigger %I on %s', g.tgname, g.tgrelid::regclass)
  from pg_trigger g
  where g.tgname like '\_500\_invalidate\_cache\_%'
    and not exists (select 1 from ballast.cache_invalidation_triggers t where t.tbl = g.tgrelid)
  union all
  -- A warning, not a failure: old dead letters mean a sink kept failing, not that this database is broken.
  select 'cache invalidation dead letters older than a day', true,
         case when d.old > 0 then
                format('warning: %s dead letters older than a day (oldest failed %s: %s); fix the sink, then select ballast.requeue_cache_invalidation_dead_letters()',
                       d.old, d.oldest, d.oldest_error)
              else format('none (%s dead letters in total)', d.total) end
  from (select count(*) filter (where failed_at < now() - interval '1 day') as old, count(*) as total,
               min(failed_at) as oldest,
               (select left(last_error, 200) from ballast.cache_invalidation_dead_letters order by failed_at limit 1) as oldest_error
        from ballast.cache_invalidation_dead_letters) d;
end;
$$ language plpgsql stable;
comment on function ballast.verify__invalidation() is
  E'Invalidation checks for verify_migration_success(): every invalidate_on_change table keeps its triggers, no orphan triggers, and a warning for dead letters older than a day.';

select ballast.unschedule_job('ballast_cache_invalidation_cleanup'); -- the job that did it before

---- metrics__cache_invalidation
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): pending, oldest pending age, dead letters.
create or replace function ballast.metrics__cache_invalidation()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_cache_invalidation_pending', 'Cache-invalidation tags not yet delivered', '{}'::jsonb, count(*)::float8
  from ballast.cache_invalidation_queue q where q.processed_at is null
  union all
  select 'ballast_cache_invalidation_oldest_pending_seconds', 'Age of the oldest undelivered cache-invalidation tag (0 when none)', '{}'::jsonb,
         coalesce(extract(epoch from now() - min(q.enqueued_at)), 0)::float8
  from ballast.cache_invalidation_queue q where q.processed_at is null
  union all
  select 'ballast_cache_invalidation_dead_letters', 'Cache-invalidation tags that used up their retries', '{}'::jsonb, count(*)::float8
  from ballast.cache_invalidation_dead_letters
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__cache_invalidation() is
  E'Gauges for /metrics: undelivered tags, age of the oldest, dead letters.';

-- sql/idempotency.sql
-- Idempotency keys (capability: idempotency): exactly-once handling of retried requests, in PostgreSQL.
--
--   idempotency_begin(scope, key, request_hash)  → started | replay | in_progress | mismatch
--   ... the caller does the work ...
--   idempotency_complete(scope, key, status_code, response_body)   or   idempotency_release(scope, key)
--   (idempotency_extend(scope, key, lease) renews the lease of a holder that works longer than it)
--
-- The table (ballast.idempotency_keys) is in a committed migration. Who holds a key is recorded in
-- locked_by: the value of the setting ballast.idempotency_owner of the caller that got `started`. A caller
-- that does not set it gets a random one for its session on its first begin, so begin and complete on the
-- same connection need nothing more. A caller that moves between pooled connections (the API) sets it,
-- per request, in the transactions that call begin and complete/release.
-- Doing the work and idempotency_complete() in ONE transaction makes database effects exactly-once: if a
-- stale owner (its lease expired and another caller took the key over) tries to complete, complete raises,
-- and the stale owner's transaction, effects included, rolls back.

---- idempotency_assert_key
---- Raises 22023 unless scope and key are acceptable (key: 1-255 printable ASCII characters).
create or replace function ballast.idempotency_assert_key(scope text, key text)
returns void as $$
declare
  bad text;
begin
  if scope is null or octet_length(scope) not between 1 and 1024 then
    raise exception using errcode = '22023',
      message = format('idempotency scope must be 1 to 1024 bytes, got %s',
                       coalesce(octet_length(scope) || ' bytes', 'null')),
      hint = 'The scope says whose key it is, e.g. ''sub:<user id>'' or ''ip:<client address>''.';
  end if;
  if key is null or length(key) not between 1 and 255 then
    raise exception using errcode = '22023',
      message = format('idempotency key must be 1 to 255 characters, got %s',
                       case when key is null then 'null' when key = '' then 'an empty key'
                            else length(key) || ' characters' end),
      hint = 'Use a random, unique value per operation, e.g. a UUID (36 characters).';
  end if;
  bad := substring(key from '[^\x20-\x7e]');
  if bad is not null then
    raise exception using errcode = '22023',
      message = format('idempotency key must be printable ASCII (0x20 to 0x7E), got U+%s at position %s of %L',
                       upper(lpad(to_hex(ascii(bad)), 4, '0')), strpos(key, bad), left(key, 60)),
      hint = 'Use a random, unique value per operation, e.g. a UUID (36 characters).';
  end if;
end;
$$ language plpgsql immutable;
comment on function ballast.idempotency_assert_key(text, text) is
  E'Raise 22023 unless scope is 1-1024 bytes and key is 1-255 printable ASCII characters (used by the idempotency functions).';

---- idempotency_key_ok
---- The rules idempotency_assert_key enforces, as one expression the hot paths test before calling it.
-- A plain SQL function, so PL/pgSQL inlines it into the caller's IF: no function call on the hot path.
-- One unanchored character class: a bounded repetition such as ^[\x20-\x7e]{1,255}$ cost ~60 us per
-- 40-character key, most of a begin.
create or replace function ballast.idempotency_key_ok(scope text, key text)
returns boolean as $$
  select coalesce(octet_length(scope) between 1 and 1024 and length(key) between 1 and 255 and key !~ '[^\x20-\x7e]', false)
$$ language sql immutable;
comment on function ballast.idempotency_key_ok(text, text) is
  E'True when scope is 1-1024 bytes and key is 1-255 printable ASCII characters; false otherwise (nulls included). idempotency_assert_key says what is wrong.';

---- idempotency_begin
---- Claims a key (started), or says what the caller gets instead: replay, in_progress or mismatch.
-- Every function below looks a key up by (scope, key) and runs with enable_seqscan = off. PL/pgSQL keeps
-- one generic plan per session: planned while the table is empty (a new database, or after cleanup
-- emptied it and vacuum recorded 0 rows) that plan is a sequential scan, which every pooled session then
-- keeps while the table grows, until an autoanalyze invalidates it. Measured: 824 keys/s instead of
-- ~3,000 in bench idempotency run on an emptied table, every call scanning the whole heap.
create or replace function ballast.idempotency_begin(
  scope text, key text, request_hash text,
  ttl interval default '24 hours', lease interval default '30 seconds')
returns table (outcome text, status_code int, response_body text, retry_after_seconds int) as $$
declare
  t timestamptz := clock_timestamp(); -- not now(): a caller may be deep in a long transaction
  me text;
  r ballast.idempotency_keys;
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_begin.scope, idempotency_begin.key);
  end if;
  if request_hash is null or length(request_hash) not between 1 and 256 then
    raise exception using errcode = '22023',
      message = format('request_hash must be 1 to 256 characters, got %s', coalesce(length(request_hash) || ' characters', 'null')),
      hint = 'Hash what makes two requests the same one, e.g. encode(sha256(convert_to(body, ''UTF8'')), ''hex'').';
  end if;
  if ttl is null or ttl <= interval '0' or lease is null or lease <= interval '0' or lease > ttl then
    raise exception using errcode = '22023',
      message = format('ttl and lease must be positive with lease <= ttl, got ttl %s and lease %s',
                       coalesce(ttl::text, 'null'), coalesce(lease::text, 'null')),
      hint = 'Defaults: ttl 24 hours, lease 30 seconds. The lease must outlast the slowest request.';
  end if;
  me := coalesce(nullif(current_setting('ballast.idempotency_owner', true), ''),
                 set_config('ballast.idempotency_owner', gen_random_uuid()::text, false));

  -- Each pass either answers or lost a race to a concurrent caller whose change it then reads.
  for attempt in 1..5 loop
    -- Most keys are new, so the insert comes first: a new key costs this one statement. The unique index
    -- lets exactly one caller insert; the others wait for its commit, insert nothing and read its row.
    -- `do nothing` locks no row that is there already, so a replay stays a read-only transaction.
    -- Measured (bench idempotency, 16 clients): begin+complete 0.56x -> 0.61x the seed's one-transaction
    -- store; replays, which pay the insert attempt too, 18.8k -> 14.2-14.7k lookups/s (p99 < 3.5 ms).
    insert into ballast.idempotency_keys
      (scope, key, request_hash, status, status_code, response_body, locked_until, locked_by, created_at, expires_at)
    values (idempotency_begin.scope, idempotency_begin.key, idempotency_begin.request_hash, 'in_progress',
            null, null, t + lease, me, t, t + ttl)
    on conflict on constraint idempotency_keys_pkey do nothing;
    if found then
      outcome := 'started';
      return next;
      return;
    end if;

    select * into r from ballast.idempotency_keys k
    where k.scope = idempotency_begin.scope and k.key = idempotency_begin.key;
    if not found then
      continue;  -- removed since the insert saw it (released, or expired and cleaned up): insert again
    end if;

    if r.expires_at <= t then
      -- Expired counts as absent: start afresh in place. A concurrent caller doing the same waits for
      -- this row lock, then finds the row no longer expired, updates nothing and goes round again.
      update ballast.idempotency_keys k
        set request_hash = idempotency_begin.request_hash, status = 'in_progress', status_code = null,
            response_body = null, locked_until = t + lease, locked_by = me, created_at = t, expires_at = t + ttl
      where k.scope = idempotency_begin.scope and k.key = idempotency_begin.key and k.expires_at <= t;
      if found then
        outcome := 'started';
        return next;
        return;
      end if;
      continue;
    end if;

    if r.request_hash <> idempotency_begin.request_hash then
      outcome := 'mismatch';
    elsif r.status = 'completed' then
      outcome := 'replay';
      status_code := r.status_code;
      response_body := r.response_body;
    elsif r.locked_until > t then
      outcome := 'in_progress';
      retry_after_seconds := greatest(1, ceil(extract(epoch from r.locked_until - t)))::int;
    end if;
    if outcome is not null then
      return next;
      return;
    end if;

    -- The holder's lease ran out (it crashed or is too slow): take the key over. If the holder
    -- completes at the same moment, its row lock makes us wait and then see 'completed' instead.
    update ballast.idempotency_keys k set locked_until = t + lease, locked_by = me
    where k.scope = idempotency_begin.scope and k.key = idempotency_begin.key and k.status = 'in_progress'
      and k.locked_until <= t and k.request_hash = idempotency_begin.request_hash and k.expires_at > t;
    if found then
      outcome := 'started';
      return next;
      return;
    end if;
  end loop;
  raise exception using errcode = '40001',
    message = format('idempotency key %L in scope %L changed under this caller 5 times in a row', key, scope),
    hint = 'Retry the call.';
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_begin(text, text, text, interval, interval) is
  E'Claim an idempotency key. outcome: started (you hold it for `lease`: do the work, then idempotency_complete or idempotency_release), '
  'replay (the stored status_code and response_body), in_progress (another caller holds a live lease; retry after retry_after_seconds), '
  'mismatch (the key was used with a different request_hash). An expired key (older than ttl) counts as absent. '
  'The holder is identified by the setting ballast.idempotency_owner (set to a random value for the session when empty).';

---- idempotency_not_held
---- Raises 55000 explaining why the caller does not hold the key (absent, completed, or someone else's).
create or replace function ballast.idempotency_not_held(scope text, key text, action text)
returns void as $$
declare
  r ballast.idempotency_keys;
begin
  select * into r from ballast.idempotency_keys k
  where k.scope = idempotency_not_held.scope and k.key = idempotency_not_held.key;
  raise exception using errcode = '55000',
    message = format('cannot %s idempotency key %L in scope %L: %s', action, key, scope,
      case when r.key is null then 'it does not exist (never begun, released, or expired and removed)'
           when r.status = 'completed' then 'it is already completed'
           else 'another caller holds it (if this caller held it once, its lease expired and the key was taken over)' end),
    hint = 'Only the caller that got outcome started may complete or release, with the same ballast.idempotency_owner setting '
           '(the same session, or the same value set in this transaction). Roll back the work this caller did for the key.';
end;
$$ language plpgsql stable;
comment on function ballast.idempotency_not_held(text, text, text) is
  E'Raise 55000 saying why the caller does not hold an idempotency key (used by idempotency_complete and idempotency_release).';

---- idempotency_complete
---- Stores the result for a key the caller holds; retries then get it back (replay).
create or replace function ballast.idempotency_complete(scope text, key text, status_code int, response_body text)
returns void as $$
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_complete.scope, idempotency_complete.key);
  end if;
  if status_code is null or status_code not between 100 and 599 then
    raise exception using errcode = '22023',
      message = format('status_code must be an HTTP status from 100 to 599, got %s', coalesce(status_code::text, 'null')),
      hint = 'For a result that should not be stored (e.g. a 5xx the client may retry), call idempotency_release instead.';
  end if;
  update ballast.idempotency_keys k
  set status = 'completed', status_code = idempotency_complete.status_code,
      response_body = idempotency_complete.response_body, locked_until = null, locked_by = null
  where k.scope = idempotency_complete.scope and k.key = idempotency_complete.key and k.status = 'in_progress'
    and k.locked_by = nullif(current_setting('ballast.idempotency_owner', true), '');
  if not found then
    perform ballast.idempotency_not_held(scope, key, 'complete');
  end if;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_complete(text, text, int, text) is
  E'Store the result (HTTP status_code 100-599 and response_body) of a key this caller holds. Raises 55000 when the caller '
  'does not hold it (lease taken over, released, completed): call it in the transaction that did the work, so that work rolls back too.';

---- idempotency_release
---- Gives up a key the caller holds, without a result: the next caller starts afresh.
create or replace function ballast.idempotency_release(scope text, key text)
returns void as $$
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_release.scope, idempotency_release.key);
  end if;
  delete from ballast.idempotency_keys k
  where k.scope = idempotency_release.scope and k.key = idempotency_release.key and k.status = 'in_progress'
    and k.locked_by = nullif(current_setting('ballast.idempotency_owner', true), '');
  if not found then
    perform ballast.idempotency_not_held(scope, key, 'release');
  end if;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_release(text, text) is
  E'Give up a key this caller holds without storing a result (e.g. after a 5xx), so a retry runs again. Raises 55000 when the caller does not hold it.';

---- idempotency_extend
---- Renews the lease on a key the caller holds, so a slow request that is still alive keeps its key.
create or replace function ballast.idempotency_extend(scope text, key text, lease interval default '30 seconds')
returns timestamptz as $$
declare
  new_end timestamptz;
begin
  if not ballast.idempotency_key_ok(scope, key) then
    perform ballast.idempotency_assert_key(idempotency_extend.scope, idempotency_extend.key);
  end if;
  if lease is null or lease <= interval '0' then
    raise exception using errcode = '22023',
      message = format('lease must be positive, got %s', coalesce(lease::text, 'null')),
      hint = 'Renew with the lease begin was given (default 30 seconds), every third of it.';
  end if;
  update ballast.idempotency_keys k set locked_until = greatest(k.locked_until, clock_timestamp() + lease)
  where k.scope = idempotency_extend.scope and k.key = idempotency_extend.key and k.status = 'in_progress'
    and k.locked_by = nullif(current_setting('ballast.idempotency_owner', true), '')
  returning k.locked_until into new_end;
  if not found then
    perform ballast.idempotency_not_held(scope, key, 'extend');
  end if;
  return new_end;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set enable_seqscan = off;
comment on function ballast.idempotency_extend(text, text, interval) is
  E'Renew the lease on a key this caller holds (locked_until = now + lease, never earlier than it was) and return the new end. '
  'A holder that works longer than its lease calls it periodically, so only a crashed holder loses its key. Raises 55000 when the caller does not hold it.';

revoke all on function ballast.idempotency_assert_key(text, text) from public;
revoke all on function ballast.idempotency_key_ok(text, text) from public;
revoke all on function ballast.idempotency_not_held(text, text, text) from public;
revoke all on function ballast.idempotency_begin(text, text, text, interval, interval) from public;
revoke all on function ballast.idempotency_complete(text, text, int, text) from public;
revoke all on function ballast.idempotency_release(text, text) from public;
revoke all on function ballast.idempotency_extend(text, text, interval) from public;
-- The API's login role calls them directly (api/middleware/idempotency.ts), outside any visitor role.
grant execute on function ballast.idempotency_begin(text, text, text, interval, interval) to ballast_authenticator;
grant execute on function ballast.idempotency_complete(text, text, int, text) to ballast_authenticator;
grant execute on function ballast.idempotency_release(text, text) to ballast_authenticator;
grant execute on function ballast.idempotency_extend(text, text, interval) to ballast_authenticator;

select ballast.owner_only_policy('ballast.idempotency_keys');

---- verify__idempotency
---- Checks that the idempotency table's indexes serve its lookups: by (scope, key), and by expires_at.
create or replace function ballast.verify__idempotency()
returns table (check_name text, ok boolean, detail text) as $$
  with t as (
    select to_regclass('ballast.idempotency_keys') as tbl
  ), idx as (
    select i.indexrelid::regclass as name, i.indisunique, i.indisvalid and i.indisready as valid,
           i.indpred is null and i.indexprs is null as plain, am.amname,
           array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality u(attnum, n)
                 join pg_attribute a on a.attrelid = i.indrelid and a.attnum = u.attnum
                 order by u.n) as cols
    from t join pg_index i on i.indrelid = t.tbl
    join pg_class ic on ic.oid = i.indexrelid join pg_am am on am.oid = ic.relam
  )
  select 'idempotency_keys lookup by (scope, key)',
         exists (select 1 from idx where indisunique and valid and plain and amname = 'btree'
                 and cols[1:2] @> array['scope', 'key'] and cardinality(cols) = 2),
         case when (select tbl from t) is null then 'table ballast.idempotency_keys is missing'
              when exists (select 1 from idx where indisunique and valid and plain and amname = 'btree'
                           and cols[1:2] @> array['scope', 'key'] and cardinality(cols) = 2)
                then 'unique btree ' || (select string_agg(name::text, ', ') from idx where indisunique and cols[1:2] @> array['scope', 'key'])
              else 'no valid unique btree index on exactly (scope, key): begin''s lookup and its ON CONFLICT need one; '
                   || 'alter table ballast.idempotency_keys add primary key (scope, key)' end
  union all
  select 'idempotency_keys lookup by expires_at',
         exists (select 1 from idx where valid and plain and amname = 'btree' and cols[1] = 'expires_at'),
         case when (select tbl from t) is null then 'table ballast.idempotency_keys is missing'
              when exists (select 1 from idx where valid and plain and amname = 'btree' and cols[1] = 'expires_at')
                then 'btree ' || (select string_agg(name::text, ', ') from idx where cols[1] = 'expires_at')
              else 'no valid btree index led by expires_at: cleanup of expired keys would scan the whole table; '
                   || 'create index on ballast.idempotency_keys (expires_at)' end
$$ language sql stable;
comment on function ballast.verify__idempotency() is
  E'verify_migration_success() checks: ballast.idempotency_keys has a valid unique btree on (scope, key) and a btree led by expires_at.';

---- metrics__idempotency
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): live keys and keys in progress.
create or replace function ballast.metrics__idempotency()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_idempotency_keys_live', 'Idempotency keys not yet expired', '{}'::jsonb, count(*)::float8
  from ballast.idempotency_keys k where k.expires_at > now()
  union all
  select 'ballast_idempotency_keys_in_progress', 'Idempotency keys whose request is still running', '{}'::jsonb, count(*)::float8
  from ballast.idempotency_keys k where k.status = 'in_progress' and k.expires_at > now()
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__idempotency() is
  E'Gauges for /metrics: idempotency keys not yet expired, and those whose request is still running.';

-- sql/rate_limit.sql
-- Rate limiting shared by every API process (capability: rate_limit): a token bucket per key in an
-- UNLOGGED table, taken with one statement so concurrent takes serialise on the bucket's row.
-- The API (as ballast_authenticator, outside any visitor's transaction) calls rate_limit_take().

select ballast.owner_only_policy('ballast.rate_limit_buckets');

---- rate_limit_take
---- Takes `cost` tokens from a token bucket (created full on first use); says whether it was allowed.
create or replace function ballast.rate_limit_take(bucket text, capacity int, refill_per_second numeric, cost int default 1)
returns table (allowed boolean, remaining int, retry_after_ms int) as $$
declare
  at timestamptz := clock_timestamp();
  cap double precision := capacity;
  rate double precision := refill_per_second;
  left_over double precision;
  ok boolean;
begin
  if bucket is null or length(bucket) not between 1 and 200 then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: bucket must be 1..200 characters, got %s', coalesce(length(bucket)::text, 'null')),
      hint = 'Name buckets like ''<class>:<subject>'', e.g. ''query:sub:<uuid>''.';
  end if;
  if capacity is null or capacity < 1 then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: capacity must be at least 1, got %s', coalesce(capacity::text, 'null'));
  end if;
  if refill_per_second is null or refill_per_second <= 0 then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: refill_per_second must be greater than 0, got %s', coalesce(refill_per_second::text, 'null'));
  end if;
  if cost is null or cost < 1 or cost > capacity then
    raise exception using errcode = '22023',
      message = format('rate_limit_take: cost must be from 1 to capacity (%s), got %s', capacity, coalesce(cost::text, 'null')),
      hint = 'A cost above the capacity could never be allowed.';
  end if;

  -- One statement, so concurrent takes on one bucket serialise on its row lock and each sees the
  -- previous one's result (ON CONFLICT DO UPDATE works on the latest row version).
  insert into ballast.rate_limit_buckets as b (bucket, tokens, granted, updated_at, full_at)
  values (rate_limit_take.bucket, cap - cost, true, at, at + make_interval(secs => cost / rate))
  on conflict on constraint rate_limit_buckets_pkey do update set
    granted = least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at))) >= cost,
    tokens = least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at)))
             - case when least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at))) >= cost
                    then cost else 0 end,
    updated_at = at,
    full_at = at + make_interval(secs => (cap - (least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at)))
             - case when least(cap, b.tokens + rate * greatest(0, extract(epoch from at - b.updated_at))) >= cost
                    then cost else 0 end)) / rate)
  returning b.tokens, b.granted into left_over, ok;

  allowed := ok;
  remaining := floor(left_over)::int;
  retry_after_ms := case when ok then 0 else ceil((cost - left_over) / rate * 1000)::int end;
  return next;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.rate_limit_take(text, int, numeric, int) is
  E'Token bucket shared by every API process: takes cost tokens from bucket (capacity, refill_per_second), returns (allowed, remaining, retry_after_ms).';
revoke all on function ballast.rate_limit_take(text, int, numeric, int) from public;
grant execute on function ballast.rate_limit_take(text, int, numeric, int) to ballast_authenticator;

---- rate_limit_prune
---- Deletes buckets that have refilled completely (absent and full are the same), in small batches.
create or replace function ballast.rate_limit_prune(batch_size int default 10000)
returns int as $$
declare
  n int;
begin
  if batch_size is null or batch_size < 1 then
    raise exception using errcode = '22023',
      message = format('rate_limit_prune: batch_size must be at least 1, got %s', coalesce(batch_size::text, 'null'));
  end if;
  with doomed as (
    select ctid from ballast.rate_limit_buckets
    where full_at < clock_timestamp()
    limit batch_size
    for update skip locked
  )
  delete from ballast.rate_limit_buckets b using doomed
  where b.ctid = doomed.ctid and b.full_at < clock_timestamp();
  get diagnostics n = row_count;
  return n;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp;
comment on function ballast.rate_limit_prune(int) is
  E'Delete up to batch_size rate-limit buckets that are full again (pg_cron runs it every 10 minutes); returns how many.';

-- Full buckets are redundant: prune them every 10 minutes (pg_cron exists only in cron.database_name).
select ballast.schedule_job('ballast_rate_limit_prune', '*/10 * * * *', 'select ballast.rate_limit_prune()');

---- verify__rate_limit
---- The rate limiter's checks: bucket table unlogged, the prune job (its grant: verify__api).
create or replace function ballast.verify__rate_limit()
returns table (check_name text, ok boolean, detail text) as $$
begin
  return query
  select 'rate_limit: buckets table is unlogged'::text,
         c.relpersistence = 'u',
         case when c.relpersistence = 'u' then 'unlogged' else 'logged: every take would write WAL; alter table ballast.rate_limit_buckets set unlogged' end
  from pg_class c where c.oid = 'ballast.rate_limit_buckets'::regclass;
  if to_regnamespace('cron') is not null then
    -- dynamic: the cron schema does not exist in the shadow database
    return query execute $q$
      select 'rate_limit: prune scheduled'::text,
             exists (select 1 from cron.job where jobname = 'ballast_rate_limit_prune' and active),
             coalesce((select format('%s: %s', schedule, command) from cron.job where jobname = 'ballast_rate_limit_prune'),
                      'missing: re-run npm run migrate (sql/rate_limit.sql schedules it)')
    $q$;
  end if;
end;
$$ language plpgsql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.verify__rate_limit() is
  E'Rate-limit checks for verify_migration_success(): buckets table unlogged, prune job scheduled (verify__api checks that only the authenticator may run rate_limit_take).';

-- sql/api.sql
-- The API server's SQL (capability: api): batched request tracing and its rollups, the report_error
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
    (created_at, endpoint, method, status_code, response_time_ms, request_id, operation_name, operation_type, user_id, org_id)
  select r.created_at, r.endpoint, r.method, r.status_code, r.response_time_ms, r.request_id, r.operation_name,
         r.operation_type, r.user_id, r.org_id
  from jsonb_to_recordset(rows) as r(created_at timestamptz, endpoint text, method text, status_code smallint,
    response_time_ms real, request_id text, operation_name text, operation_type text, user_id uuid, org_id uuid);
  get diagnostics n = row_count;
  return n;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.record_performance_metrics(jsonb) is
  E'Insert up to 10000 request rows ([{created_at, endpoint, method, status_code, response_time_ms, request_id, operation_name, operation_type, user_id, org_id}]) into ballast.performance_metrics.';
revoke all on function ballast.record_performance_metrics(jsonb) from public;
grant execute on function ballast.record_performance_metrics(jsonb) to ballast_authenticator;

---- enqueue_error_reports
---- Queues one graphile-worker report_error job per report (a JSON array of objects).
create or replace function ballast.enqueue_error_reports(reports jsonb)
returns int as $$
declare
  n int;
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
  select count(*) into n from ballast_worker.add_jobs(array(
    select row('report_error', r::json, null, null, 10, null, null, null)::ballast_worker.job_spec
    from jsonb_array_elements(reports) r));
  return n;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.enqueue_error_reports(jsonb) is
  E'Queue a report_error graphile-worker job per report (JSON objects, at most 1000 per call); the API calls it for 5xx responses.';
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
create unique index if not exists api_metrics_5m_key on ballast.api_metrics_5m (bucket_start, endpoint, method, operation_name);

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
create unique index if not exists api_metrics_hourly_key on ballast.api_metrics_hourly (bucket_start, endpoint, method, operation_name);

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
---- graphile-worker's queue (pending, oldest pending age, dead jobs per task) and worker heartbeats.
create or replace function ballast.metrics__worker()
returns table (metric text, help text, labels jsonb, value double precision) as $$
begin
  if to_regclass('ballast_worker._private_jobs') is not null and to_regclass('ballast_worker._private_tasks') is not null then
    return query
    with per_task as (
      select t.identifier,
             count(j.id) filter (where j.is_available and j.run_at <= now()) as pending,
             extract(epoch from now() - min(j.run_at) filter (where j.is_available and j.run_at <= now())) as oldest,
             count(j.id) filter (where j.attempts >= j.max_attempts) as dead,
             count(j.id) filter (where j.locked_at is not null) as running
      from ballast_worker._private_tasks t
      left join ballast_worker._private_jobs j on j.task_id = t.id
      group by t.identifier
    )
    select 'ballast_worker_jobs_pending', 'graphile-worker jobs due and not yet taken, by task', jsonb_build_object('task', identifier), pending::float8 from per_task
    union all
    select 'ballast_worker_jobs_oldest_pending_seconds', 'Age of the oldest due graphile-worker job, by task (0 when none)', jsonb_build_object('task', identifier), coalesce(oldest, 0)::float8 from per_task
    union all
    select 'ballast_worker_jobs_dead', 'graphile-worker jobs that used up their attempts (dead letters), by task', jsonb_build_object('task', identifier), dead::float8 from per_task
    union all
    select 'ballast_worker_jobs_running', 'graphile-worker jobs locked by a worker, by task', jsonb_build_object('task', identifier), running::float8 from per_task;
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
  E'Gauges for /metrics: graphile-worker queue depth, oldest pending age, dead jobs, running jobs per task; worker heartbeat age.';

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

-- sql/verify.sql
-- verify_migration_success(): one call that says whether this database is production-ready.
-- Each capability contributes checks as functions named ballast.verify__<capability>() returning
-- (check_name, ok, detail); verify_migration_success() runs them all, in name order.

---- qualified_name
---- schema.name of a relation, always qualified (regclass output depends on search_path).
create or replace function ballast.qualified_name(obj regclass)
returns text as $$
  select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = obj
$$ language sql stable;
comment on function ballast.qualified_name(regclass) is
  E'schema.name of a relation, qualified whatever the search_path (how verify_exemptions stores objects).';

---- is_exempt
---- Whether an object is listed in verify_exemptions for a check.
create or replace function ballast.is_exempt(check_name text, obj regclass)
returns boolean as $$
  select exists (select 1 from ballast.verify_exemptions e
                 where e.check_name = is_exempt.check_name and e.object_name = ballast.qualified_name(obj))
$$ language sql stable;
comment on function ballast.is_exempt(text, regclass) is
  E'True when the object is listed in ballast.verify_exemptions for the given check.';

---- exempt
---- Records that an object is deliberately exempt from a check, with a reason.
create or replace function ballast.exempt(check_name text, obj regclass, reason text)
returns void as $$
begin
  if check_name is null or check_name not in ('rls', 'matview_unique_index') then
    raise exception using errcode = '22023',
      message = format('exempt: unknown check %L', check_name),
      hint = 'Checks that take exemptions: rls, matview_unique_index.';
  end if;
  if obj is null then
    raise exception using errcode = '22004', message = 'exempt: object must not be null';
  end if;
  if reason is null or length(trim(reason)) < 10 then
    raise exception using errcode = '22023',
      message = format('exempt: reason must say why in at least 10 characters, got %L', reason);
  end if;
  insert into ballast.verify_exemptions (check_name, object_name, reason)
  values (check_name, ballast.qualified_name(obj), reason)
  on conflict on constraint verify_exemptions_pkey do update set reason = excluded.reason;
end;
$$ language plpgsql volatile;
comment on function ballast.exempt(text, regclass, text) is
  E'Exempt an object from a verify_migration_success() check (rls or matview_unique_index), with a reason of at least 10 characters.';

---- exempt_role
---- Records that a role may keep BYPASSRLS, with a reason: the check "no BYPASSRLS but superusers" then passes for it.
create or replace function ballast.exempt_role(role_name name, reason text)
returns void as $$
begin
  if role_name is null then
    raise exception using errcode = '22004', message = 'exempt_role: role_name must not be null',
      hint = 'Name the role that needs BYPASSRLS, e.g. select ballast.exempt_role(''replicator'', ''logical replication reads every row'').';
  end if;
  if not exists (select 1 from pg_roles r where r.rolname = exempt_role.role_name) then
    raise exception using errcode = '42704',
      message = format('exempt_role: role %I does not exist', role_name),
      hint = 'Exempt an existing role (select rolname from pg_roles where rolbypassrls).';
  end if;
  if role_name in ('ballast_owner', 'ballast_authenticator', 'ballast_anonymous', 'ballast_member', 'ballast_admin') then
    raise exception using errcode = '22023',
      message = format('exempt_role: %I is one of the kit''s roles, which never bypass row level security', role_name),
      hint = format('alter role %I nobypassrls; give the access to a role of its own instead.', role_name);
  end if;
  if reason is null or length(btrim(reason)) < 10 then
    raise exception using errcode = '22023',
      message = format('exempt_role: reason must say why %I needs BYPASSRLS in at least 10 characters, got %L', role_name, reason);
  end if;
  insert into ballast.verify_exemptions (check_name, object_name, reason)
  values ('bypassrls', role_name, btrim(reason))
  on conflict on constraint verify_exemptions_pkey do update set reason = excluded.reason;
end;
$$ language plpgsql volatile;
comment on function ballast.exempt_role(name, text) is
  E'Let a role keep BYPASSRLS: verify_migration_success()''s check "no BYPASSRLS but superusers" passes for it and shows the reason (at least 10 characters). 42704 for a role that does not exist, 22023 for one of the kit''s own roles or a short reason. Stored in ballast.verify_exemptions (check_name bypassrls); delete the row to withdraw it.';

---- applied_migration
---- The newest kit migration applied here; the API's readiness check compares it with the one it ships.
create or replace function ballast.applied_migration()
returns text as $$
  select m.name from ballast.migrations m order by m.id desc limit 1
$$ language sql stable security definer set search_path = pg_catalog;
comment on function ballast.applied_migration() is
  E'Name of the newest kit migration applied to this database, e.g. ''000001-ballast'' (for /health/ready).';
grant execute on function ballast.applied_migration() to ballast_authenticator;

---- verify__core
---- The foundation's checks: extensions, roles, RLS everywhere, matviews refreshable concurrently.
create or replace function ballast.verify__core()
returns table (check_name text, ok boolean, detail text) as $$
  -- extensions
  select 'extension pg_cron', exists (select 1 from pg_extension where extname = 'pg_cron'),
         case when exists (select 1 from pg_extension where extname = 'pg_cron') then 'installed'
              else format('missing: cron.database_name is %L, this database is %L',
                          current_setting('cron.database_name', true), current_database()) end
  union all
  -- roles and their attributes
  select format('role %s', want.name),
         r.oid is not null and r.rolcanlogin = want.login and not r.rolsuper and not r.rolbypassrls
           and (want.name <> 'ballast_authenticator' or not r.rolinherit),
         case when r.oid is null then 'missing'
              else format('login=%s inherit=%s superuser=%s bypassrls=%s (want login=%s%s, no superuser, no bypassrls)',
                          r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolbypassrls, want.login,
                          case when want.name = 'ballast_authenticator' then ', noinherit' else '' end) end
  from (values ('ballast_owner', true), ('ballast_authenticator', true), ('ballast_anonymous', false),
               ('ballast_member', false), ('ballast_admin', false)) as want(name, login)
  left join pg_roles r on r.rolname = want.name
  union all
  select format('authenticator may become %s', v),
         coalesce(pg_has_role('ballast_authenticator', v, 'member'), false),
         'grant ' || v || ' to ballast_authenticator'
  from unnest(array['ballast_anonymous', 'ballast_member', 'ballast_admin']) v
  where exists (select 1 from pg_roles where rolname = v)
    and exists (select 1 from pg_roles where rolname = 'ballast_authenticator')
  union all
  -- roles that bypass RLS: superusers, and the roles exempted with a reason (ballast.exempt_role)
  select 'no BYPASSRLS but superusers', bool_and(e.reason is not null) is not false,
         coalesce(string_agg(case when e.reason is null
                                  then format('%s has BYPASSRLS: alter role %I nobypassrls, or select ballast.exempt_role(%L, ''<why it needs it>'')', r.rolname, r.rolname, r.rolname)
                                  else format('%s exempt: %s', r.rolname, e.reason) end, '; ' order by e.reason is not null, r.rolname), 'none')
  from pg_roles r
  left join ballast.verify_exemptions e on e.check_name = 'bypassrls' and e.object_name = r.rolname
  where r.rolbypassrls and not r.rolsuper
  union all
  -- the roles of yours that act as visitors (setting visitor_roles): the kit role's rights, no more, no RLS
  -- bypass. "More" is membership in a kit role further along anonymous < member < admin < authenticator <
  -- owner (the authenticator may become any visitor role; the owner_all policies let the owner do anything).
  -- Membership, not privileges: policies apply to members whether or not they inherit.
  select format('visitor role %s', v.name),
         r.oid is not null and not r.rolsuper and not r.rolbypassrls and pg_has_role(r.oid, k.oid, 'usage') and higher.names is null,
         case when r.oid is null then format('missing: create role %I nologin; grant %I to %I', v.name, v.kit_role, v.name)
              when r.rolsuper or r.rolbypassrls then format('%s is a superuser or has BYPASSRLS: a visitor must be subject to row level security (alter role %I nosuperuser nobypassrls)', v.name, v.name)
              when not pg_has_role(r.oid, k.oid, 'usage') then format('%s does not have the rights of %s: grant %I to %I%s', v.name, v.kit_role, v.kit_role, v.name,
                                                                     case when pg_has_role(r.oid, k.oid, 'member') then format(' (it is a member: alter role %I inherit)', v.name) else '' end)
              when higher.names is not null then format('%s is also a member of %s: a %s visitor must not get more', v.name, higher.names, v.kit_role)
              else format('has the rights of %s; policies and grants to %s apply to it', v.kit_role, v.kit_role) end
  from jsonb_each_text(ballast.setting('visitor_roles')) v(name, kit_role)
  join pg_roles k on k.rolname = v.kit_role
  left join pg_roles r on r.rolname = v.name
  left join lateral (
    select string_agg(h.rolname, ', ' order by h.rolname) as names
    from pg_roles h
    where r.oid is not null and pg_has_role(r.oid, h.oid, 'member')
      and array_position(array['ballast_anonymous', 'ballast_member', 'ballast_admin', 'ballast_authenticator', 'ballast_owner'], h.rolname::text)
          > array_position(array['ballast_anonymous', 'ballast_member', 'ballast_admin', 'ballast_authenticator', 'ballast_owner'], v.kit_role)) higher on true
  union all
  -- RLS enabled and forced on every table of the kit and of the schemas configured in verify_schemas
  select 'rls ' || ballast.qualified_name(c.oid),
         (c.relrowsecurity and c.relforcerowsecurity) or ballast.is_exempt('rls', c.oid),
         case when c.relrowsecurity and c.relforcerowsecurity then 'enabled and forced'
              when ballast.is_exempt('rls', c.oid) then 'exempt: ' ||
                (select reason from ballast.verify_exemptions e where e.check_name = 'rls' and e.object_name = ballast.qualified_name(c.oid))
              else format('enabled=%s forced=%s: alter table %s enable row level security, force row level security',
                          c.relrowsecurity, c.relforcerowsecurity, c.oid::regclass) end
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname = any(ballast.verify_schemas())
  union all
  -- every materialized view can be refreshed concurrently (index-wise)
  select 'matview ' || ballast.qualified_name(m.matview),
         m.concurrent_ok or m.reason like 'not populated%' or ballast.is_exempt('matview_unique_index', m.matview),
         case when ballast.is_exempt('matview_unique_index', m.matview) and not m.concurrent_ok then 'exempt: ' || m.reason
              else m.reason end
  from ballast.check_matview_unique_indexes() m
$$ language sql stable;
comment on function ballast.verify__core() is
  E'Foundation checks for verify_migration_success(): pg_cron, roles, BYPASSRLS (superusers and ballast.exempt_role() exemptions only), your visitor roles (setting visitor_roles), RLS on every table, matview unique indexes.';

---- verify_migration_success
---- Runs every ballast.verify__*() check function and returns one row per check.
create or replace function ballast.verify_migration_success()
returns table (check_name text, ok boolean, detail text) as $$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::regprocedure from pg_proc p
    where p.pronamespace = 'ballast'::regnamespace and p.proname like 'verify\_\_%' and p.pronargs = 0
    order by p.proname
  loop
    return query execute format('select check_name, ok, detail from %s', fn);
  end loop;
end;
$$ language plpgsql stable;
comment on function ballast.verify_migration_success() is
  E'Is this database production-ready? One row per check (check_name, ok, detail), from every ballast.verify__*() function.';

-- sql/access.sql
-- Tenancy and access (capability: access): who is asking, read from the JWT claims the API puts into
-- the transaction, and why a request was denied.
--
-- The API verifies the JWT and sets, per transaction: role (ballast_anonymous | ballast_member |
-- ballast_admin, or a role of yours granted one of them), request.jwt.claims (the token's claims as JSON)
-- and request.id. The claims the kit reads, as identity providers issue them:
--   sub                 the subject, any string of 1 to 128 characters ('auth0|123', 'user_2abc', a uuid):
--                       ballast.current_subject(); ballast.current_user_id() is it as a uuid, when it is one
--   org claim           the organisation's uuid, optional: ballast.current_org_id()
--   role claim          member or admin, optional: ballast.current_app_role()
--   exp                 seconds since 1970, optional; a past exp is no session
-- The org and role claims are named by the settings org_claim and role_claim (default org_id and role;
-- e.g. https://example.com/org_id): see apply_claim_settings below for why reading them costs nothing.
-- Missing, empty ('' after a transaction that set it) or malformed claims mean "no session": the helpers
-- return null, so every policy written with them denies. They never raise: an error would abort the
-- statement before a policy could say no, and a caller that caught it might skip the check.

---- apply_claim_settings
---- (Re)creates ballast.org_claim() and ballast.role_claim(): the configured claim names, as literals.
-- The claims are read on every request and by the audit trigger, where reading ballast.settings would cost
-- more than the rest of the path. An IMMUTABLE SQL function returning a literal is inlined and folded into
-- a constant when a statement or PL/pgSQL expression is planned, so the names cost nothing per call; the
-- plans that folded one are invalidated when it is replaced, so a change reaches every session.
-- ballast.configure() calls this when org_claim or role_claim changes, and this file calls it whenever
-- sql/ is applied (a plain create or replace here would reset the names to their defaults). The settings
-- stay the source of truth; verify__access says when the functions disagree with them.
create or replace function ballast.apply_claim_settings()
returns void as $$
declare
  s record;
  body text;
begin
  for s in select v.name, v.what from (values ('org_claim', 'the uuid of the organisation the session acts for'),
                                              ('role_claim', 'the application role (member or admin)')) v(name, what) loop
    body := format('select %L::text', ballast.setting(s.name) #>> '{}');
    -- replaced only when it changes: replacing invalidates the cached plans of every session
    if body is distinct from (select p.prosrc from pg_proc p where p.oid = to_regprocedure(format('ballast.%I()', s.name))) then
      execute format('create or replace function ballast.%I() returns text as %L language sql immutable parallel safe', s.name, body);
    end if;
    execute format('comment on function ballast.%I() is %L', s.name,
      format('The name of the JWT claim holding %s: %s. Generated from the setting %s by ballast.apply_claim_settings(); change it with ballast.configure(%L, ...), never by hand.',
             s.what, ballast.setting(s.name), s.name, s.name));
  end loop;
end;
$$ language plpgsql volatile;
comment on function ballast.apply_claim_settings() is
  E'Regenerate ballast.org_claim() and ballast.role_claim() from the settings org_claim and role_claim (ballast.configure() and every apply of sql/ call it). They return the claim names as literals the planner inlines, so the claims path reads no table.';

select ballast.apply_claim_settings();

---- uuid_or_null
---- A text as a uuid when it is one (8-4-4-4-12 hex digits, or 32 without hyphens); otherwise null. Never raises.
-- One use of t (substring returns the whole match, or null): a SQL function whose argument appears twice
-- is not inlined when that argument is costly, e.g. ballast.current_claims() ->> 'sub' in current_user_id().
create or replace function ballast.uuid_or_null(t text)
returns uuid as $$
  select substring(t from '^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')::uuid
$$ language sql immutable parallel safe;
comment on function ballast.uuid_or_null(text) is
  E'The text as a uuid when it is written as one (8-4-4-4-12 hex digits, or 32 hex digits), else null; never raises. E.g. join an audit row''s text actor_id to a uuid key: on u.id = ballast.uuid_or_null(a.actor_id).';

---- parse_claims
---- Validates a claims text; returns the claims object, or null and the reason it is not a session.
-- PL/pgSQL sets up each expression it evaluates again in every transaction, and this runs once per
-- request: a well-formed text costs five expressions (one guarded test of its shape, then the role and
-- exp verdict). Only a text that fails the test goes through the step-by-step checks that name the problem.
-- ballast.org_claim() and ballast.role_claim() are constants by the time an expression runs (see above).
create or replace function ballast.parse_claims(raw text, out claims jsonb, out problem text) as $$
declare
  c jsonb;
  id uuid;
  shape_ok boolean;
begin
  begin
    c := raw::jsonb;
    shape_ok := jsonb_typeof(c) = 'object' and jsonb_typeof(c -> 'sub') = 'string' and length(c ->> 'sub') between 1 and 128
                and (not c ? ballast.org_claim()
                     or (jsonb_typeof(c -> ballast.org_claim()) = 'string' and (c ->> ballast.org_claim())::uuid is not null));
  exception when others then
    shape_ok := false;  -- not JSON, or a bad uuid: the checks below say which
  end;
  if not coalesce(shape_ok, false) then
    if raw is null or btrim(raw) = '' then
      problem := 'no claims: request.jwt.claims is not set (no token)';
      return;
    end if;
    -- one subtransaction for every cast that may fail; problem says which step was running
    begin
      problem := 'malformed claims: request.jwt.claims is not valid JSON';
      c := raw::jsonb;
      if jsonb_typeof(c) <> 'object' then
        problem := format('malformed claims: expected a JSON object, got %s', jsonb_typeof(c));
        return;
      end if;
      problem := 'malformed claims: sub must be the subject''s id at the identity provider, a string of 1 to 128 characters';
      if jsonb_typeof(c -> 'sub') is distinct from 'string' or length(c ->> 'sub') not between 1 and 128 then
        return;
      end if;
      if c ? ballast.org_claim() then
        problem := format('malformed claims: %s must be an organisation uuid', ballast.org_claim());
        if jsonb_typeof(c -> ballast.org_claim()) <> 'string' then
          return;
        end if;
        id := (c ->> ballast.org_claim())::uuid;
      end if;
    exception when others then
      return;  -- with the problem of the step that failed
    end;
  end if;
  problem := case
    when c ? ballast.role_claim() and (c ->> ballast.role_claim() is null or c ->> ballast.role_claim() not in ('member', 'admin'))
      then format('malformed claims: %s must be member or admin', ballast.role_claim())
    when not c ? 'exp' then null
    when jsonb_typeof(c -> 'exp') <> 'number' then 'malformed claims: exp must be a number (seconds since 1970)'
    when (c ->> 'exp')::numeric <= extract(epoch from now()) then format('expired claims: exp %s is before now', c ->> 'exp')
  end;
  claims := case when problem is null then c end;
end;
$$ language plpgsql stable;
comment on function ballast.parse_claims(text) is
  E'Validate a JWT claims text: (claims, null) for a session, (null, reason) otherwise. A session needs sub (a string of 1 to 128 characters); the org claim (setting org_claim), when present, must be a uuid, the role claim (setting role_claim) member or admin, exp in the future. Never raises.';

---- current_claims
---- The current transaction's verified claims, or null when there is no (valid) session.
-- Policies and the audit trigger call this several times per statement, so the verdict on a claims text
-- is remembered for the transaction (ballast.claims_ok / ballast.claims_bad hold the text last judged):
-- a repeat costs a string comparison, not a parse in a subtransaction. Whoever could forge those settings
-- could set request.jwt.claims itself, so the memo grants nothing new. (Hence STABLE with a set_config.)
create or replace function ballast.current_claims()
returns jsonb as $$
declare
  raw text := current_setting('request.jwt.claims', true);
  parsed record;
begin
  if raw is null or raw = '' then
    return null;
  elsif raw = current_setting('ballast.claims_ok', true) then
    return raw::jsonb;
  elsif raw = current_setting('ballast.claims_bad', true) then
    return null;
  end if;
  parsed := ballast.parse_claims(raw);
  -- an assignment, not PERFORM: PERFORM runs a whole SELECT through the executor
  raw := set_config(case when parsed.claims is null then 'ballast.claims_bad' else 'ballast.claims_ok' end, raw, true);
  return parsed.claims;
end;
$$ language plpgsql stable;
comment on function ballast.current_claims() is
  E'The JWT claims of the current transaction (request.jwt.claims) as jsonb; null when missing, empty, malformed or expired. Use as (select ballast.current_claims()) in policies.';

---- current_subject
---- The session's subject (claims sub) as the identity provider wrote it, or null.
create or replace function ballast.current_subject()
returns text as $$
  select ballast.current_claims() ->> 'sub'
$$ language sql stable;
comment on function ballast.current_subject() is
  E'The subject (claims sub) of the current session as text, e.g. ''auth0|123'', ''user_2abc'' or a uuid; null without a valid session. What the audit log records as actor_id. Use as (select ballast.current_subject()) in policies.';

---- current_user_id
---- The session's subject as a uuid, or null (no session, or a subject that is not a uuid).
create or replace function ballast.current_user_id()
returns uuid as $$
  select ballast.uuid_or_null(ballast.current_claims() ->> 'sub')
$$ language sql stable;
comment on function ballast.current_user_id() is
  E'The subject (claims sub) of the current session as a uuid; null without a valid session, or when the subject is not a uuid (then use ballast.current_subject()). Never raises. Use as (select ballast.current_user_id()) in policies.';

---- current_org_id
---- The organisation the session acts for (the org claim, setting org_claim), or null.
create or replace function ballast.current_org_id()
returns uuid as $$
  select (ballast.current_claims() ->> ballast.org_claim())::uuid
$$ language sql stable;
comment on function ballast.current_org_id() is
  E'The organisation the current session acts for (the claim named by the setting org_claim, default org_id); null without a valid session or org. Use as (select ballast.current_org_id()) in policies.';

---- current_app_role
---- The role the token claims (member or admin; the claim named by role_claim), or null. A claim, not a proof: check memberships too.
create or replace function ballast.current_app_role()
returns text as $$
  select ballast.current_claims() ->> ballast.role_claim()
$$ language sql stable;
comment on function ballast.current_app_role() is
  E'The application role the token claims (member or admin; the claim named by the setting role_claim, default role); null without a valid session. Policies granting admin rights must also check the membership table: a claim alone is not proof.';

---- current_request_id
---- The API's request id for this transaction (request.id), or null.
create or replace function ballast.current_request_id()
returns text as $$
  select left(nullif(current_setting('request.id', true), ''), 200)
$$ language sql stable;
comment on function ballast.current_request_id() is
  E'The request id the API set for this transaction (request.id); null outside a request.';

---- explain_access
---- For the current claims and role: what the table's access rules need for a command, and which fails.
create or replace function ballast.explain_access(tbl regclass, command text, row_data jsonb default null)
returns table (check_name text, ok boolean, detail text) as $$
declare
  cmd text := lower(btrim(command));
  parsed record;
  rel record;
  pol record;
  unknown_cols text[];
  denied_cols text[];
  org_col_type regtype;
  policy_ok boolean;
  any_permissive boolean := false;
  permissive_ok boolean := false;
  restrictive_ok boolean := true;
  expr text;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'explain_access: tbl must not be null',
      hint = 'Pass the table as a regclass, e.g. ''app_public.funds''.';
  end if;
  if cmd is null or cmd not in ('select', 'insert', 'update', 'delete') then
    raise exception using errcode = '22023',
      message = format('explain_access: command must be select, insert, update or delete, got %L', command);
  end if;
  if row_data is not null and jsonb_typeof(row_data) <> 'object' then
    raise exception using errcode = '22023',
      message = format('explain_access: row_data must be a JSON object of column values, got %s', jsonb_typeof(row_data));
  end if;
  select c.oid, c.relkind, c.relrowsecurity, format('%I.%I', n.nspname, c.relname) as name
    into rel from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = tbl;
  if rel.relkind not in ('r', 'p', 'v', 'm', 'f') then
    raise exception using errcode = '42809', message = format('explain_access: %s is not a table or view', tbl);
  end if;

  -- 1. session: are there valid claims at all?
  parsed := ballast.parse_claims(current_setting('request.jwt.claims', true));
  check_name := 'session';
  ok := parsed.claims is not null;
  detail := coalesce(parsed.problem, format('user %s, org %s, role %s', parsed.claims ->> 'sub',
    coalesce(parsed.claims ->> ballast.org_claim(), '(none)'), coalesce(parsed.claims ->> ballast.role_claim(), '(none)')));
  return next;

  -- 2. the database role's privilege on the table (GRANT), and on the columns given (insert, update)
  check_name := 'privilege';
  ok := has_table_privilege(current_user, tbl, cmd)
        or (cmd in ('insert', 'update', 'select') and has_any_column_privilege(current_user, tbl, cmd));
  detail := format('role %s %s %s on %s', current_user, case when ok then 'has' else 'has no' end, upper(cmd), rel.name);
  return next;
  if row_data is not null and cmd in ('insert', 'update') then
    select array_agg(k order by k) filter (where a.attnum is null),
           array_agg(k order by k) filter (where a.attnum is not null and not has_column_privilege(current_user, tbl, a.attname, cmd))
      into unknown_cols, denied_cols
      from jsonb_object_keys(row_data) k
      left join pg_attribute a on a.attrelid = tbl and a.attname = k and a.attnum > 0 and not a.attisdropped
     where cmd = 'insert' or a.attnum is null  -- update: primary key columns identify the row, they are not written
        or not exists (select 1 from pg_index i where i.indrelid = tbl and i.indisprimary and a.attnum = any (i.indkey));
    check_name := 'column privilege';
    ok := denied_cols is null and unknown_cols is null;
    detail := case
      when unknown_cols is not null then format('%s has no column %s', rel.name, array_to_string(unknown_cols, ', '))
      when denied_cols is not null then format('role %s may not %s column %s', current_user, upper(cmd), array_to_string(denied_cols, ', '))
      else format('role %s may %s every column given', current_user, upper(cmd)) end;
    return next;
  end if;

  -- 3. org match: the row's org_id is the organisation the session acts for (tables with an org_id column)
  select a.atttypid::regtype into org_col_type
    from pg_attribute a where a.attrelid = tbl and a.attname = 'org_id' and not a.attisdropped;
  if org_col_type is not null and row_data ? 'org_id' then
    check_name := 'org match';
    ok := parsed.claims is not null and (row_data ->> 'org_id') = (parsed.claims ->> ballast.org_claim());
    detail := format('row org_id %s, session org_id %s', coalesce(row_data ->> 'org_id', 'null'),
      coalesce(parsed.claims ->> ballast.org_claim(), '(no session org)'));
    return next;
  end if;

  if not rel.relrowsecurity then
    check_name := 'row level security';
    ok := true;
    detail := format('%s has no row level security: the privilege decides', rel.name);
    return next;
    return;
  end if;

  -- 4. policies: is there one for this command and role at all?
  check_name := 'policy for role';
  select string_agg(format('%s (%s)', p.polname, case when p.polroles = '{0}' then 'public'
           else (select string_agg(r.rolname, ', ' order by r.rolname) from pg_roles r where r.oid = any (p.polroles)) end), '; ' order by p.polname)
    into detail
    from pg_policy p
   where p.polrelid = tbl and p.polpermissive
     and p.polcmd in ('*', case cmd when 'select' then 'r' when 'insert' then 'a' when 'update' then 'w' else 'd' end)
     and (p.polroles = '{0}' or exists (select 1 from unnest(p.polroles) r where pg_has_role(current_user, r, 'member')));
  ok := detail is not null;
  detail := case when ok then format('role %s is covered by %s', current_user, detail)
                 else format('no policy lets role %s %s %s', current_user, upper(cmd), rel.name) end;
  return next;

  -- 5. each applicable policy, evaluated for the current claims against row_data (columns not given are null)
  if row_data is null then
    return;
  end if;
  for pol in
    select p.polname, p.polpermissive,
           pg_get_expr(case when cmd = 'insert' then p.polwithcheck else p.polqual end, p.polrelid) as using_or_check,
           case when cmd = 'update' then pg_get_expr(coalesce(p.polwithcheck, p.polqual), p.polrelid) end as update_check
      from pg_policy p
     where p.polrelid = tbl
       and p.polcmd in ('*', case cmd when 'select' then 'r' when 'insert' then 'a' when 'update' then 'w' else 'd' end)
       and (p.polroles = '{0}' or exists (select 1 from unnest(p.polroles) r where pg_has_role(current_user, r, 'member')))
     order by p.polpermissive desc, p.polname
  loop
    expr := coalesce(pol.using_or_check, 'true');
    if pol.update_check is not null and pol.update_check <> expr then
      expr := format('(%s) and (%s)', expr, pol.update_check);
    end if;
    check_name := format('policy %s', pol.polname);
    begin
      execute format('select coalesce((%s), false) from jsonb_populate_record(null::%s, $1) as %I',
                     expr, tbl, (select c.relname from pg_class c where c.oid = tbl))
        into policy_ok using row_data;
      ok := policy_ok;
      detail := format('%s %s: %s', case when pol.polpermissive then 'permissive' else 'restrictive' end,
                       case when policy_ok then 'passes' else 'fails' end, expr);
    exception when others then
      ok := false;
      detail := format('could not evaluate %s: %s', expr, sqlerrm);
    end;
    if pol.polpermissive then
      any_permissive := true;
      permissive_ok := permissive_ok or ok;
    else
      restrictive_ok := restrictive_ok and ok;
    end if;
    return next;
  end loop;
  check_name := 'policies';
  ok := any_permissive and permissive_ok and restrictive_ok;
  detail := case when not any_permissive then 'no permissive policy applies: denied'
                 when not permissive_ok then 'no permissive policy passes for this row'
                 when not restrictive_ok then 'a restrictive policy fails for this row'
                 else 'the row passes the policies' end;
  return next;
end;
$$ language plpgsql stable;
comment on function ballast.explain_access(regclass, text, jsonb) is
  E'Why is (or would) the current session (claims and role) be denied COMMAND on TBL for ROW_DATA? One row per check: session, privilege, column privilege, org match, policy for role, each policy evaluated against the row, policies. ROW_DATA is the row as column => value (for update: its primary key plus the new values; columns not given count as null). Runs as the caller.';

-- org_claim() and role_claim() too: a function the caller may not execute is not inlined
grant execute on function ballast.parse_claims(text), ballast.current_claims(), ballast.current_subject(),
  ballast.current_user_id(), ballast.current_org_id(), ballast.current_app_role(), ballast.current_request_id(),
  ballast.org_claim(), ballast.role_claim(), ballast.uuid_or_null(text), ballast.explain_access(regclass, text, jsonb)
  to ballast_anonymous, ballast_member, ballast_admin;

---- verify__access
---- Every table of the checked schemas has policies; no SECURITY DEFINER function in an exposed schema without a comment saying why it is safe.
create or replace function ballast.verify__access()
returns table (check_name text, ok boolean, detail text) as $$
  select 'policies ' || ballast.qualified_name(c.oid),
         count(p.polname) > 0 or ballast.is_exempt('rls', c.oid),
         case when count(p.polname) > 0 then string_agg(p.polname::text, ', ' order by p.polname)
              when ballast.is_exempt('rls', c.oid) then 'exempt from rls checks'
              else format('no policy: with RLS forced nobody, not even the owner, can use %s; write its policies (select ballast.owner_only_policy(%L) at least)',
                          c.oid::regclass, ballast.qualified_name(c.oid)) end
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    left join pg_policy p on p.polrelid = c.oid
   where c.relkind in ('r', 'p') and n.nspname = any(ballast.verify_schemas()) and n.nspname <> 'ballast'
   group by c.oid
  union all
  select 'security definer ' || p.oid::regprocedure::text,
         coalesce(obj_description(p.oid, 'pg_proc'), '') ~* 'safe',
         case when coalesce(obj_description(p.oid, 'pg_proc'), '') ~* 'safe' then 'commented: ' || obj_description(p.oid, 'pg_proc')
              else format('functions of an exposed schema run as their caller unless a comment says why SECURITY DEFINER is safe: comment on function %s is ''... safe because ...''', p.oid::regprocedure) end
    from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
   where n.nspname in (select jsonb_array_elements_text(ballast.setting('exposed_schemas'))) and p.prosecdef
  union all
  -- the generated claim-name functions say what the settings say (they differ after a direct write to ballast.settings)
  select 'claim names',
         ballast.org_claim() = ballast.setting('org_claim') #>> '{}' and ballast.role_claim() = ballast.setting('role_claim') #>> '{}',
         case when ballast.org_claim() = ballast.setting('org_claim') #>> '{}' and ballast.role_claim() = ballast.setting('role_claim') #>> '{}'
              then format('org claim %s, role claim %s', ballast.setting('org_claim'), ballast.setting('role_claim'))
              else format('ballast.org_claim() is %L and ballast.role_claim() %L, but the settings org_claim and role_claim are %s and %s: select ballast.apply_claim_settings() (and change settings with ballast.configure())',
                          ballast.org_claim(), ballast.role_claim(), ballast.setting('org_claim'), ballast.setting('role_claim')) end
$$ language sql stable;
comment on function ballast.verify__access() is
  E'Checks for verify_migration_success(): policies on every table of the schemas in the setting verify_schemas, SECURITY DEFINER functions of the schemas in exposed_schemas commented as safe, and ballast.org_claim() / role_claim() agreeing with the settings org_claim and role_claim.';

-- sql/audit.sql
-- Audit log (capability: audit): who changed which row of an audited table, when, in which request.
--
-- enable_audit(tbl) puts four AFTER ... FOR EACH STATEMENT triggers on the table (INSERT, UPDATE, DELETE
-- with transition tables, TRUNCATE): one INSERT ... SELECT per statement writes one audit row per changed
-- row, so a 100k-row UPDATE is one set-based insert, not 100k trigger calls. The trigger function is
-- SECURITY DEFINER (the visitors cannot write the log themselves) and reads the actor from the claims: the
-- subject (sub) as text, so subjects that are not uuids ('auth0|123') are audited too.
-- The log is append-only for every role, the owner included: UPDATE and TRUNCATE always fail, DELETE
-- only on the cleanup capability's retention path (see tg_audit_log__append_only).

---- audit_record_id
---- Stable id of one row of one table: 8 bytes from the table name, 8 from the primary key.
-- The key half is the key itself for a single integer key (so a bulk change in key order writes the
-- record_id index almost sequentially, not at random), else the first 8 bytes of md5 of the key values.
create or replace function ballast.audit_record_id(table_name text, pk_columns text[], row_data jsonb)
returns uuid as $$
  select (substr(md5(table_name), 1, 16) || case
    when cardinality(pk_columns) = 1 and jsonb_typeof(row_data -> pk_columns[1]) = 'number'
         and (row_data ->> pk_columns[1]) ~ '^-?[0-9]{1,19}$'
         and (row_data ->> pk_columns[1])::numeric between -9223372036854775808 and 9223372036854775807
      then lpad(to_hex((row_data ->> pk_columns[1])::bigint), 16, '0')
    else substr(md5(case when cardinality(pk_columns) = 1 then coalesce((row_data -> pk_columns[1])::text, 'null')
      else (select string_agg(coalesce((row_data -> k)::text, 'null'), ',' order by i) from unnest(pk_columns) with ordinality u(k, i)) end), 1, 16)
  end)::uuid
$$ language sql immutable parallel safe;
comment on function ballast.audit_record_id(text, text[], jsonb) is
  E'The audit log''s record_id of a row (a uuid: 8 bytes of md5(table_name), then the integer key or 8 bytes of md5 of the key values). A row''s history: where record_id = ballast.audit_record_id(''app_public.funds'', ''{id}'', ''{"id": 42}'').';

---- tg__audit
---- Statement-level audit trigger: one audit row per row in the transition table(s).
-- TG_ARGV: 0 primary key columns (text[]), 1 excluded columns (text[]), 2 the org column or '',
-- 3 'int' when the key is one integer column (record_id is then computed inline, see audit_record_id),
-- 4 schema.table, 5 the first 16 hex digits of md5(schema.table). Computed once by enable_audit.
create or replace function ballast.tg__audit()
returns trigger as $$
declare
  tname text := TG_ARGV[4];             -- the table's name when auditing was enabled (see verify__audit)
  prefix text := TG_ARGV[5];            -- substr(md5(tname), 1, 16): the table half of record_id
  pk text[] := TG_ARGV[0]::text[];
  pk1 text := pk[1];
  int_pk boolean := TG_ARGV[3] = 'int';
  excluded text[] := TG_ARGV[1]::text[];
  org_col text := nullif(TG_ARGV[2], '');
  claims jsonb := ballast.current_claims();
  actor text := claims ->> 'sub';       -- the subject as the identity provider wrote it: 'auth0|123', a uuid, ...
  claim_org uuid := (claims ->> ballast.org_claim())::uuid;  -- current_claims() validated it; the name is a folded constant
  -- a SECURITY DEFINER function runs as the owner, but the role setting still names the role that acted
  actor_role text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  req text := ballast.current_request_id();
  app text := nullif(current_setting('application_name'), '');
  xid bigint := txid_current();
begin
  if TG_OP = 'INSERT' then
    insert into ballast.audit_log (table_name, op, record_id, new_values, actor_id, actor_role, org_id, request_id, txid, application_name)
    select tname, 'INSERT',
           case when int_pk then (prefix || lpad(to_hex((n.j ->> pk1)::bigint), 16, '0'))::uuid else ballast.audit_record_id(tname, pk, n.j) end,
           n.j - excluded, actor, actor_role, coalesce((n.j ->> org_col)::uuid, claim_org), req, xid, app
      from (select to_jsonb(t) as j from new_table t) n;
  elsif TG_OP = 'UPDATE' then
    -- PostgreSQL appends the old and the new image of each updated row to the two transition tables
    -- together, so position i of one is position i of the other: zipping pairs each row with itself, with
    -- no join, and even when the update changed its key (record_id is then the new key's).
    insert into ballast.audit_log (table_name, op, record_id, old_values, new_values, changed_columns, actor_id, actor_role, org_id, request_id, txid, application_name)
    select tname, 'UPDATE',
           case when int_pk then (prefix || lpad(to_hex((z.n ->> pk1)::bigint), 16, '0'))::uuid else ballast.audit_record_id(tname, pk, z.n) end,
           z.o - excluded, z.n - excluded,
           array(select k from jsonb_object_keys(z.n) k where z.o -> k is distinct from z.n -> k and not k = any (excluded)),
           actor, actor_role, coalesce((z.n ->> org_col)::uuid, claim_org), req, xid, app
      from unnest(array(select to_jsonb(t) from old_table t), array(select to_jsonb(t) from new_table t)) z(o, n);
  elsif TG_OP = 'DELETE' then
    insert into ballast.audit_log (table_name, op, record_id, old_values, actor_id, actor_role, org_id, request_id, txid, application_name)
    select tname, 'DELETE',
           case when int_pk then (prefix || lpad(to_hex((o.j ->> pk1)::bigint), 16, '0'))::uuid else ballast.audit_record_id(tname, pk, o.j) end,
           o.j - excluded, actor, actor_role, coalesce((o.j ->> org_col)::uuid, claim_org), req, xid, app
      from (select to_jsonb(t) as j from old_table t) o;
  elsif TG_OP = 'TRUNCATE' then
    insert into ballast.audit_log (table_name, op, actor_id, actor_role, org_id, request_id, txid, application_name)
    values (tname, 'TRUNCATE', actor, actor_role, claim_org, req, xid, app);
  end if;
  return null;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp set jit = off;
comment on function ballast.tg__audit() is
  E'Statement-level audit trigger installed by ballast.enable_audit(); writes to ballast.audit_log as its owner.';

---- enable_audit
---- Starts auditing a table: validates it, installs the statement-level triggers, records it. Idempotent.
create or replace function ballast.enable_audit(tbl regclass, exclude_columns text[] default '{}', org_column text default null)
returns void as $$
declare
  rel record;
  pk text[];
  unknown text[];
  org_col text;
  org_type regtype;
  key_kind text;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'enable_audit: tbl must not be null',
      hint = 'Pass the table to audit, e.g. select ballast.enable_audit(''app_public.funds'').';
  end if;
  select c.relkind, ballast.qualified_name(c.oid) as name into rel from pg_class c where c.oid = tbl;
  if rel.relkind not in ('r', 'p') then
    raise exception using errcode = '42809',
      message = format('enable_audit: %s is not a table (relkind %s); only tables can be audited', rel.name, rel.relkind);
  end if;
  if rel.name = 'ballast.audit_log' then
    raise exception using errcode = '22023', message = 'enable_audit: ballast.audit_log cannot audit itself';
  end if;
  if exclude_columns is null or array_position(exclude_columns, null) is not null then
    raise exception using errcode = '22004',
      message = format('enable_audit: exclude_columns must be an array of column names without nulls, got %L', exclude_columns);
  end if;
  select array_agg(a.attname::text order by k.i) into pk
    from pg_index i
    cross join unnest(i.indkey) with ordinality k(attnum, i)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
   where i.indrelid = tbl and i.indisprimary;
  if pk is null then
    raise exception using errcode = '55000',
      message = format('enable_audit: %s has no primary key; the audit log identifies each row by it', rel.name),
      hint = format('Add one first: alter table %s add primary key (<columns that identify a row>).', rel.name);
  end if;
  select array_agg(e order by e) into unknown from unnest(exclude_columns) e
   where not exists (select 1 from pg_attribute a where a.attrelid = tbl and a.attname = e and a.attnum > 0 and not a.attisdropped);
  if unknown is not null then
    raise exception using errcode = '42703',
      message = format('enable_audit: %s has no column %s to exclude', rel.name, array_to_string(unknown, ', ')),
      hint = format('Columns of %s: %s.', rel.name, (select string_agg(a.attname, ', ' order by a.attnum) from pg_attribute a
                                                      where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped));
  end if;
  org_col := coalesce(org_column, 'org_id');
  select a.atttypid::regtype into org_type from pg_attribute a
   where a.attrelid = tbl and a.attname = org_col and a.attnum > 0 and not a.attisdropped;
  if org_column is not null and org_type is distinct from 'uuid'::regtype then
    raise exception using errcode = '42703',
      message = format('enable_audit: org_column %I of %s must be a uuid column, got %s', org_column, rel.name, coalesce(org_type::text, 'no such column'));
  end if;
  if org_type is distinct from 'uuid'::regtype then
    org_col := null;  -- no org column: the audit rows carry the claims' org_id
  end if;
  select case when cardinality(pk) = 1 and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) then 'int' else '' end
    into key_kind from pg_attribute a where a.attrelid = tbl and a.attname = pk[1];

  perform ballast.disable_audit(tbl);
  execute format('create trigger _900_audit_insert after insert on %s referencing new table as new_table for each statement execute function ballast.tg__audit(%L, %L, %L, %L, %L, %L)',
                 tbl, pk, exclude_columns, coalesce(org_col, ''), key_kind, rel.name, substr(md5(rel.name), 1, 16));
  execute format('create trigger _900_audit_update after update on %s referencing old table as old_table new table as new_table for each statement execute function ballast.tg__audit(%L, %L, %L, %L, %L, %L)',
                 tbl, pk, exclude_columns, coalesce(org_col, ''), key_kind, rel.name, substr(md5(rel.name), 1, 16));
  execute format('create trigger _900_audit_delete after delete on %s referencing old table as old_table for each statement execute function ballast.tg__audit(%L, %L, %L, %L, %L, %L)',
                 tbl, pk, exclude_columns, coalesce(org_col, ''), key_kind, rel.name, substr(md5(rel.name), 1, 16));
  execute format('create trigger _900_audit_truncate after truncate on %s for each statement execute function ballast.tg__audit(%L, %L, %L, %L, %L, %L)',
                 tbl, pk, exclude_columns, coalesce(org_col, ''), key_kind, rel.name, substr(md5(rel.name), 1, 16));
  insert into ballast.audited_tables (table_name, pk_columns, exclude_columns, org_column)
  values (rel.name, pk, exclude_columns, org_col);
end;
$$ language plpgsql volatile;
comment on function ballast.enable_audit(regclass, text[], text) is
  E'Audit every INSERT, UPDATE, DELETE and TRUNCATE on a table with a primary key into ballast.audit_log (statement-level triggers). exclude_columns are left out of the recorded values; org_column (default: org_id when it is a uuid column) attributes rows to an organisation. Idempotent.';

---- disable_audit
---- Stops auditing a table: drops its audit triggers. Returns whether it was audited. The log is kept.
create or replace function ballast.disable_audit(tbl regclass)
returns boolean as $$
declare
  was boolean;
  trigger_name name;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'disable_audit: tbl must not be null';
  end if;
  was := false;
  for trigger_name in
    select t.tgname from pg_trigger t where t.tgrelid = tbl and not t.tgisinternal
       and t.tgname in ('_900_audit_insert', '_900_audit_update', '_900_audit_delete', '_900_audit_truncate')
  loop
    execute format('drop trigger %I on %s', trigger_name, tbl);
    was := true;
  end loop;
  delete from ballast.audited_tables a where a.table_name = ballast.qualified_name(tbl);
  return was;
end;
$$ language plpgsql volatile;
comment on function ballast.disable_audit(regclass) is
  E'Stop auditing a table (drops its _900_audit_* triggers); its history stays in ballast.audit_log. Returns false when it was not audited.';

---- tg_audit_log__append_only
---- Refuses UPDATE and TRUNCATE on the audit log always, and DELETE outside the retention path.
create or replace function ballast.tg_audit_log__append_only()
returns trigger as $$
begin
  if TG_OP = 'DELETE' then
    perform ballast.audit_log_retention();  -- raises unless this is the cleanup capability's retention path
    return null;
  end if;
  raise exception using errcode = '42501',
    message = format('ballast.audit_log is append-only: %s is not allowed, for any role', TG_OP),
    hint = 'Old audit rows are removed only by the cleanup capability''s retention policy for ballast.audit_log.';
end;
$$ language plpgsql volatile;
comment on function ballast.tg_audit_log__append_only() is
  E'Keeps ballast.audit_log append-only: UPDATE and TRUNCATE always fail; DELETE only on the retention path.';

---- audit_log_retention
---- The retention that allows deleting audit rows now, or an error saying why deleting is not allowed.
create or replace function ballast.audit_log_retention()
returns interval as $$
declare
  retain interval;
begin
  if current_setting('ballast.cleanup_table', true) is distinct from 'ballast.audit_log' then
    raise exception using errcode = '42501',
      message = 'ballast.audit_log is append-only: DELETE is allowed only on the cleanup retention path',
      hint = 'The cleanup capability sets ballast.cleanup_table = ''ballast.audit_log'' and deletes rows older than the retention in ballast.cleanup_policies.';
  end if;
  if to_regclass('ballast.cleanup_policies') is not null then
    -- dynamic: the cleanup capability's table may not exist when this file is applied
    execute 'select max(retain) from ballast.cleanup_policies where tbl = ''ballast.audit_log''::regclass' into retain;
  end if;
  if retain is null then
    raise exception using errcode = '42501',
      message = 'ballast.audit_log: no retention policy for ballast.audit_log in ballast.cleanup_policies, so no row may be deleted';
  end if;
  return retain;
end;
$$ language plpgsql stable;
comment on function ballast.audit_log_retention() is
  E'On the cleanup path (ballast.cleanup_table = ''ballast.audit_log''): the audit log''s retain interval from ballast.cleanup_policies; raises otherwise.';

---- tg_audit_log__check_retention
---- After a DELETE on the audit log: every deleted row must be older than the retention, or all is undone.
create or replace function ballast.tg_audit_log__check_retention()
returns trigger as $$
declare
  retain interval := ballast.audit_log_retention();
  youngest timestamptz;
begin
  select max(occurred_at) into youngest from old_table;
  if youngest >= now() - retain then
    raise exception using errcode = '42501',
      message = format('ballast.audit_log: rows from %s are within the retention of %s; only rows before %s may be deleted',
                       youngest, retain, now() - retain);
  end if;
  return null;
end;
$$ language plpgsql volatile;
comment on function ballast.tg_audit_log__check_retention() is
  E'Undoes a DELETE on ballast.audit_log that removed any row younger than the retention policy allows.';

drop trigger if exists _100_append_only_update on ballast.audit_log;
create trigger _100_append_only_update before update on ballast.audit_log
  for each statement execute function ballast.tg_audit_log__append_only();
drop trigger if exists _100_append_only_truncate on ballast.audit_log;
create trigger _100_append_only_truncate before truncate on ballast.audit_log
  for each statement execute function ballast.tg_audit_log__append_only();
drop trigger if exists _100_append_only_delete on ballast.audit_log;
create trigger _100_append_only_delete before delete on ballast.audit_log
  for each statement execute function ballast.tg_audit_log__append_only();
drop trigger if exists _900_retention_delete on ballast.audit_log;
create trigger _900_retention_delete after delete on ballast.audit_log
  referencing old table as old_table for each statement execute function ballast.tg_audit_log__check_retention();

-- Who reads the log: the owner everything; an org admin their organisation's rows (the application may
-- tighten "admin" with a restrictive policy, as sql/app.sql does with its memberships); nobody else.
select ballast.owner_only_policy('ballast.audit_log');
select ballast.owner_only_policy('ballast.audited_tables');
drop policy if exists audit_log_org_admin_read on ballast.audit_log;
create policy audit_log_org_admin_read on ballast.audit_log for select to ballast_admin
  using (org_id = (select ballast.current_org_id()) and (select ballast.current_app_role()) = 'admin');
grant select on ballast.audit_log to ballast_member, ballast_admin;

---- admin_audit_log
---- What an organisation admin may read of the audit log: their organisation's rows (RLS decides).
create or replace view ballast.admin_audit_log with (security_invoker = true) as
  select id, occurred_at, table_name, op, record_id, old_values, new_values, changed_columns,
         actor_id, actor_role, org_id, request_id
    from ballast.audit_log;
comment on view ballast.admin_audit_log is
  E'The audit log as an organisation admin sees it: rows of their organisation only (RLS on ballast.audit_log); members see nothing.';
grant select on ballast.admin_audit_log to ballast_member, ballast_admin;

---- audited_tables_list
---- The audited tables' names, e.g. the admin page's filter (audited_tables itself is owner-only).
create or replace function ballast.audited_tables_list()
returns setof text as $$
  select table_name from ballast.audited_tables order by 1
$$ language sql stable security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.audited_tables_list() is
  E'The names (schema.table) of the tables with audit triggers. SECURITY DEFINER: ballast.audited_tables is owner-only; the names alone reveal no rows.';
revoke all on function ballast.audited_tables_list() from public;
grant execute on function ballast.audited_tables_list() to ballast_member, ballast_admin;

---- verify__audit
---- Every audited table still has its four audit triggers; the audit log is still append-only.
create or replace function ballast.verify__audit()
returns table (check_name text, ok boolean, detail text) as $$
  select 'audit triggers ' || a.table_name,
         to_regclass(a.table_name) is not null and count(t.tgname) = 4,
         case when to_regclass(a.table_name) is null then format('%s no longer exists: select ballast.disable_audit(...) was not run; delete from ballast.audited_tables where table_name = %L', a.table_name, a.table_name)
              when count(t.tgname) = 4 then 'insert, update, delete, truncate triggers present'
              else format('%s of 4 audit triggers present: run select ballast.enable_audit(%L)', count(t.tgname), a.table_name) end
    from ballast.audited_tables a
    left join pg_trigger t on t.tgrelid = to_regclass(a.table_name) and t.tgname like '\_900\_audit\_%' and t.tgenabled <> 'D'
   group by a.table_name
  union all
  select 'audit log append-only', count(*) = 4,
         format('%s of 4 guard triggers enabled on ballast.audit_log (_100_append_only_update/_truncate/_delete, _900_retention_delete)', count(*))
    from pg_trigger t
   where t.tgrelid = 'ballast.audit_log'::regclass and t.tgenabled <> 'D'
     and t.tgname in ('_100_append_only_update', '_100_append_only_truncate', '_100_append_only_delete', '_900_retention_delete')
$$ language sql stable;
comment on function ballast.verify__audit() is
  E'Checks for verify_migration_success(): audit triggers on every table in ballast.audited_tables, and the audit log''s append-only triggers.';

-- sql/ops.sql
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

-- sql/cleanup.sql
-- Batched cleanup with retention policies (capability: cleanup).
-- A policy says: delete rows of <tbl> whose <time_column> is older than now() - <retain> (and that
-- satisfy <extra_condition>), <batch_size> rows per transaction, on the pg_cron <schedule>. run_cleanup()
-- is a procedure that commits after every batch, picks rows with FOR UPDATE SKIP LOCKED (it never waits
-- for a writer's row lock), runs one pass per policy at a time across sessions (a session-level advisory
-- lock per table) and stops when nothing is left or max_runtime is reached. Every pass is recorded in
-- ballast.cleanup_runs; ballast.cleanup_status is the operator's view.
-- The tables live in the committed migration; this file is applied after every migrate and idempotent.
-- It comes last in sql/ORDER so the built-in policies can see the tables of the other capabilities.

select ballast.owner_only_policy('ballast.cleanup_policies');
select ballast.owner_only_policy('ballast.cleanup_runs');

---- cron_field_values
---- The sorted values one field of a cron schedule stands for (null when the field is not valid).
create or replace function ballast.cron_field_values(field text, lo int, hi int, names text[] default null)
returns int[] as $$
declare
  part text;
  m text[];
  a int;
  b int;
  step int;
  vals int[] := '{}';
begin
  if field is null or field = '' then
    return null;
  end if;
  foreach part in array string_to_array(lower(field), ',') loop
    -- '*', 'n', 'n-m', each optionally '/step'; names (jan, mon) where the field has them
    m := regexp_match(part, '^(\*|[0-9a-z]+)(?:-([0-9a-z]+))?(?:/([0-9]+))?$');
    if m is null or (m[1] = '*' and m[2] is not null) then
      return null;
    end if;
    if m[1] = '*' then
      a := lo;
      b := hi;
    else
      a := case when m[1] ~ '^[0-9]+$' and length(m[1]) <= 4 then m[1]::int
                else lo - 1 + array_position(names, m[1]) end;
      b := case when m[2] is null then a
                when m[2] ~ '^[0-9]+$' and length(m[2]) <= 4 then m[2]::int
                else lo - 1 + array_position(names, m[2]) end;
      if m[2] is null and m[3] is not null then
        return null; -- '5/10': a step needs a range or '*'
      end if;
    end if;
    step := coalesce(nullif(m[3], '')::int, 1);
    if a is null or b is null or a < lo or b > hi or a > b or step < 1 then
      return null;
    end if;
    vals := vals || array(select generate_series(a, b, step));
  end loop;
  return array(select distinct v from unnest(vals) v order by v);
end;
$$ language plpgsql immutable parallel safe;
comment on function ballast.cron_field_values(text, int, int, text[]) is
  E'The sorted values one field of a pg_cron schedule stands for, or null when the field is not valid.';

---- cron_next
---- The first time after `after` at which a pg_cron 1.4 schedule fires (pg_cron schedules in UTC).
create or replace function ballast.cron_next(schedule text, after timestamptz)
returns timestamptz as $$
declare
  s text := lower(btrim(schedule));
  f text[];
  mins int[];
  hrs int[];
  doms int[];
  mons int[];
  dows int[];
  dom_star boolean;
  dow_star boolean;
  t timestamp;
  d date;
  h int;
  mi int;
  day_ok boolean;
begin
  if schedule is null or after is null then
    return null;
  end if;
  s := case s
         when '@yearly' then '0 0 1 1 *' when '@annually' then '0 0 1 1 *'
         when '@monthly' then '0 0 1 * *' when '@weekly' then '0 0 * * 0'
         when '@daily' then '0 0 * * *' when '@midnight' then '0 0 * * *'
         when '@hourly' then '0 * * * *' else s end;
  f := regexp_split_to_array(s, '\s+');
  if array_length(f, 1) is distinct from 5 then
    raise exception using errcode = '22023',
      message = format('schedule %L is not a pg_cron schedule: it needs 5 fields (minute hour day-of-month month day-of-week), got %s',
                       schedule, coalesce(array_length(f, 1), 0)),
      hint = 'For example ''17 * * * *'' (hourly at :17) or ''@daily''. pg_cron 1.4 has no seconds and no @reboot for cleanup.';
  end if;
  mins := ballast.cron_field_values(f[1], 0, 59);
  hrs := ballast.cron_field_values(f[2], 0, 23);
  doms := ballast.cron_field_values(f[3], 1, 31);
  mons := ballast.cron_field_values(f[4], 1, 12, array['jan','feb','mar','apr','may','jun','jul','aug','sep','oct','nov','dec']);
  dows := ballast.cron_field_values(f[5], 0, 7, array['sun','mon','tue','wed','thu','fri','sat']);
  if mins is null or hrs is null or doms is null or mons is null or dows is null then
    raise exception using errcode = '22023',
      message = format('schedule %L is not a pg_cron schedule: field %s (%L) is not valid', schedule,
        case when mins is null then 1 when hrs is null then 2 when doms is null then 3 when mons is null then 4 else 5 end,
        f[case when mins is null then 1 when hrs is null then 2 when doms is null then 3 when mons is null then 4 else 5 end]),
      hint = 'Each field is *, n, n-m, */k or n-m/k, or a comma list of those; minute 0-59, hour 0-23, day 1-31, month 1-12 or jan-dec, weekday 0-7 or sun-sat.';
  end if;
  if 7 = any (dows) then
    dows := dows || 0; -- 7 is Sunday too
  end if;
  -- vixie cron: when day-of-month or day-of-week starts with '*', both must match; otherwise either
  dom_star := f[3] like '*%';
  dow_star := f[5] like '*%';
  t := date_trunc('minute', after at time zone 'UTC') + interval '1 minute';
  d := t::date;
  for i in 0 .. 366 * 8 loop -- '0 0 29 2 *' may wait up to 8 years
    day_ok := case when dom_star or dow_star
                   then extract(day from d)::int = any (doms) and extract(dow from d)::int = any (dows)
                   else extract(day from d)::int = any (doms) or extract(dow from d)::int = any (dows) end;
    if extract(month from d)::int = any (mons) and day_ok then
      foreach h in array hrs loop
        continue when d = t::date and h < extract(hour from t);
        foreach mi in array mins loop
          continue when d = t::date and h = extract(hour from t) and mi < extract(minute from t);
          return (d + make_time(h, mi, 0)) at time zone 'UTC';
        end loop;
      end loop;
    end if;
    d := d + 1;
  end loop;
  return null; -- never fires (e.g. '0 0 31 2 *')
end;
$$ language plpgsql immutable parallel safe;
comment on function ballast.cron_next(text, timestamptz) is
  E'The first time after the given one at which a pg_cron 1.4 schedule fires (UTC, as pg_cron 1.4 schedules); raises 22023 for a schedule pg_cron would not take.';

---- cleanup_expression_problem
---- Why a text is not a single SQL expression that can be wrapped in parentheses (null when it is).
create or replace function ballast.cleanup_expression_problem(expr text)
returns text as $$
declare
  n int := length(expr);
  i int := 1;
  c text;
  nxt text;
  prev text;
  depth int := 0;
  state text := 'code'; -- code | str (standard string) | estr (backslash escapes) | ident ("quoted")
  backslashes boolean := current_setting('standard_conforming_strings') = 'off';
begin
  if expr is null then
    return null;
  end if;
  if btrim(expr) = '' then
    return 'is empty (pass null for no extra condition)';
  end if;
  if n > 2000 then
    return format('is %s characters long (at most 2000)', n);
  end if;
  if position(';' in expr) > 0 then
    return 'contains a semicolon (one expression, not statements; a ; inside a string is refused too)';
  end if;
  while i <= n loop
    c := substr(expr, i, 1);
    nxt := substr(expr, i + 1, 1);
    if state = 'code' then
      if c = '-' and nxt = '-' then
        return 'contains a comment (--)';
      elsif c = '/' and nxt = '*' then
        return 'contains a comment (/*)';
      elsif c = '$' then
        return 'contains $ (no dollar quoting or parameters: write strings as ''...'')';
      elsif c = '(' then
        depth := depth + 1;
      elsif c = ')' then
        depth := depth - 1;
        if depth < 0 then
          return format('closes a parenthesis it did not open (at character %s)', i);
        end if;
      elsif c = '''' then
        -- E'...' when the e starts a token (the lexer takes the longest match: date'x' is not one)
        prev := substr(expr, i - 1, 1);
        state := case when backslashes then 'estr'
                      when i > 1 and lower(prev) = 'e'
                           and (i = 2 or not (substr(expr, i - 2, 1) ~ '[A-Za-z0-9_$]' or ascii(substr(expr, i - 2, 1)) > 127))
                      then 'estr' else 'str' end;
      elsif c = '"' then
        state := 'ident';
      end if;
    elsif state in ('str', 'estr') then
      if state = 'estr' and c = '\' then
        i := i + 1; -- the escaped character
      elsif c = '''' then
        if nxt = '''' then
          i := i + 1;
        else
          state := 'code';
        end if;
      end if;
    elsif state = 'ident' then
      if c = '"' then
        if nxt = '"' then
          i := i + 1;
        else
          state := 'code';
        end if;
      end if;
    end if;
    i := i + 1;
  end loop;
  if state <> 'code' then
    return 'has an unterminated quote';
  end if;
  if depth <> 0 then
    return format('has %s unclosed parenthesis', depth);
  end if;
  return null;
end;
$$ language plpgsql stable parallel safe;
comment on function ballast.cleanup_expression_problem(text) is
  E'Why a text cannot be a cleanup extra_condition (a semicolon, a comment, $, unbalanced parentheses or quotes), or null when its shape is fine.';

---- cleanup_time_column_type
---- The base type of a column if it is a timestamptz, timestamp or date (null otherwise).
create or replace function ballast.cleanup_time_column_type(tbl regclass, col name)
returns regtype as $$
  select base.oid::regtype
  from pg_attribute a
  join pg_type t on t.oid = a.atttypid
  join pg_type base on base.oid = case when t.typtype = 'd' then t.typbasetype else t.oid end
  where a.attrelid = tbl and a.attname = col and a.attnum > 0 and not a.attisdropped
    and base.oid in ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
$$ language sql stable;
comment on function ballast.cleanup_time_column_type(regclass, name) is
  E'The type of a column when cleanup can use it as a time column (timestamptz, timestamp, date, or a domain over one); null otherwise.';

---- cleanup_index
---- The index cleanup uses for a time column: valid, btree (or brin), leading with it, not partial
---- unless its predicate is `<col> IS NOT NULL` (which every `<col> < cutoff` implies).
create or replace function ballast.cleanup_index(tbl regclass, col name)
returns regclass as $$
  select i.indexrelid::regclass
  from pg_index i
  join pg_class ic on ic.oid = i.indexrelid
  join pg_am am on am.oid = ic.relam
  join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
  where i.indrelid = tbl and a.attname = col and i.indisvalid and i.indisready and am.amname in ('btree', 'brin')
    and (i.indpred is null or pg_get_expr(i.indpred, i.indrelid) = format('(%s IS NOT NULL)', quote_ident(col)))
  order by am.amname = 'btree' desc, i.indpred is null desc, i.indnatts, ic.relname
  limit 1
$$ language sql stable;
comment on function ballast.cleanup_index(regclass, name) is
  E'The index that serves cleanup batches on (tbl, col): valid btree or brin leading with col, non-partial or WHERE col IS NOT NULL; null when there is none.';

---- cleanup_index_problem
---- What stops cleanup from finding batches of tbl by col through an index (null when nothing does).
create or replace function ballast.cleanup_index_problem(tbl regclass, col name)
returns text as $$
  select case
    when not exists (select 1 from pg_class c where c.oid = tbl) then
      format('table with oid %s no longer exists: select ballast.drop_cleanup_policy(%s)', tbl::oid, tbl::oid)
    when ballast.cleanup_time_column_type(tbl, col) is null then
      format('%s has no timestamptz, timestamp or date column %I', ballast.qualified_name(tbl), col)
    when ballast.cleanup_index(tbl, col) is null then
      format('no index on %s leads with %I: create index concurrently on %s (%I);',
             ballast.qualified_name(tbl), col, ballast.qualified_name(tbl), col)
  end
$$ language sql stable;
comment on function ballast.cleanup_index_problem(regclass, name) is
  E'Null when cleanup can find batches of the table through an index on the time column; otherwise what is wrong and the statement that fixes it.';

---- check_cleanup_policy
---- Refuses a policy that cleanup could not run safely; each problem has its own SQLSTATE.
create or replace function ballast.check_cleanup_policy(p ballast.cleanup_policies)
returns void as $$
declare
  kind "char";
  runner name := (select r.rolname from pg_class c join pg_roles r on r.oid = c.relowner
                  where c.oid = 'ballast.cleanup_policies'::regclass);
  problem text;
  st text;
  msg text;
begin
  if p.tbl is null then
    raise exception using errcode = '22004', message = 'cleanup policy: tbl must not be null';
  end if;
  select c.relkind into kind from pg_class c where c.oid = p.tbl;
  if kind is null then
    raise exception using errcode = '42P01', message = format('cleanup policy: no table with oid %s', p.tbl::oid);
  elsif kind = 'p' then
    raise exception using errcode = '42809',
      message = format('cleanup policy: %s is partitioned; deleting rows from it is the slow way', p.tbl),
      hint = 'Drop or detach old partitions instead, or add a policy on each partition.';
  elsif kind <> 'r' then
    raise exception using errcode = '42809',
      message = format('cleanup policy: %s is not a table (relkind %s); cleanup deletes from ordinary tables only', p.tbl, kind);
  end if;
  if p.time_column is null then
    raise exception using errcode = '22004', message = 'cleanup policy: time_column must not be null';
  end if;
  if not exists (select 1 from pg_attribute a where a.attrelid = p.tbl and a.attname = p.time_column
                 and a.attnum > 0 and not a.attisdropped) then
    raise exception using errcode = '42703',
      message = format('cleanup policy: %s has no column %I', p.tbl, p.time_column),
      hint = format('Columns of type timestamptz, timestamp or date in %s: %s', p.tbl, coalesce((
        select string_agg(quote_ident(a.attname), ', ' order by a.attnum) from pg_attribute a
        where a.attrelid = p.tbl and a.attnum > 0 and not a.attisdropped
          and ballast.cleanup_time_column_type(p.tbl, a.attname) is not null), 'none'));
  end if;
  if ballast.cleanup_time_column_type(p.tbl, p.time_column) is null then
    raise exception using errcode = '42804',
      message = format('cleanup policy: %s.%I is %s; the time column must be timestamptz, timestamp or date', p.tbl, p.time_column,
        (select format_type(a.atttypid, a.atttypmod) from pg_attribute a where a.attrelid = p.tbl and a.attname = p.time_column));
  end if;
  if p.retain is null or p.retain <= interval '0' then
    raise exception using errcode = '22023',
      message = format('cleanup policy: retain must be a positive interval, got %s', coalesce(p.retain::text, 'null')),
      hint = 'Rows with time_column < now() - retain are deleted; for an expires_at column, retain is the grace period after expiry, e.g. ''1 hour''.';
  end if;
  if p.batch_size is null or p.batch_size < 1 or p.batch_size > 100000 then
    raise exception using errcode = '22023',
      message = format('cleanup policy: batch_size must be 1..100000 rows, got %s', coalesce(p.batch_size::text, 'null')),
      hint = 'About 1000 keeps each transaction short; bigger batches hold row locks and WAL longer.';
  end if;
  if p.max_runtime is null or p.max_runtime <= interval '0' or p.max_runtime > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('cleanup policy: max_runtime must be more than 0 and at most 1 day, got %s', coalesce(p.max_runtime::text, 'null'));
  end if;
  if p.batch_pause is null or p.batch_pause < interval '0' or p.batch_pause > interval '1 minute' then
    raise exception using errcode = '22023',
      message = format('cleanup policy: batch_pause must be 0..1 minute, got %s', coalesce(p.batch_pause::text, 'null'));
  end if;
  if p.schedule is null then
    raise exception using errcode = '22004', message = 'cleanup policy: schedule must not be null';
  end if;
  if ballast.cron_next(p.schedule, now()) is null then -- raises 22023 itself when the syntax is wrong
    raise exception using errcode = '22023', message = format('cleanup policy: schedule %L never fires', p.schedule);
  end if;
  -- extra_condition: one boolean expression on the table. Its shape first (so it cannot close the
  -- parentheses it is wrapped in), then the parser and planner: EXPLAIN plans without running it.
  problem := ballast.cleanup_expression_problem(p.extra_condition);
  if problem is not null then
    raise exception using errcode = '42601',
      message = format('cleanup policy: extra_condition %L %s', p.extra_condition, problem),
      hint = 'extra_condition is one boolean SQL expression on the table''s columns, e.g. status = ''done''; it is ANDed with the time filter.';
  end if;
  if p.extra_condition is not null then
    begin
      execute format('explain (costs off) select 1 from %s where (%s) limit 0', p.tbl, p.extra_condition);
    exception when others then
      get stacked diagnostics st = returned_sqlstate, msg = message_text;
      raise exception using errcode = st,
        message = format('cleanup policy: extra_condition %L is not a boolean expression on %s: %s', p.extra_condition, p.tbl, msg),
        hint = 'It is evaluated with search_path = pg_catalog: qualify your own functions and operators.';
    end;
  end if;
  if ballast.cleanup_index(p.tbl, p.time_column) is null then
    raise exception using errcode = '55000',
      message = format('cleanup policy: no index on %s leads with %I, so every batch would scan the whole table', p.tbl, p.time_column),
      hint = format('create index concurrently on %s (%I);', p.tbl, p.time_column);
  end if;
  -- the pg_cron job runs as the owner of the ballast tables: it must be allowed to lock and delete
  if not has_table_privilege(runner, p.tbl, 'DELETE') or not has_any_column_privilege(runner, p.tbl, 'UPDATE') then
    raise exception using errcode = '42501',
      message = format('cleanup policy: %s may not delete from %s or lock its rows (FOR UPDATE needs UPDATE on a column)', runner, p.tbl),
      hint = format('grant delete, update (%I) on %s to %I;', p.time_column, p.tbl, runner);
  end if;
  -- row level security that hides rows from the job's role would make every run delete nothing, quietly:
  -- FOR UPDATE needs SELECT and UPDATE policies to pass, DELETE a DELETE policy
  select string_agg(cmd.name, ', ' order by cmd.name) into problem
  from pg_class c
  cross join (values ('r', 'select'), ('w', 'update'), ('d', 'delete')) as cmd(code, name)
  join pg_roles r on r.rolname = runner
  where c.oid = p.tbl and c.relrowsecurity and (c.relforcerowsecurity or c.relowner <> r.oid)
    and not r.rolsuper and not r.rolbypassrls
    and not exists (select 1 from pg_policy pol
                    where pol.polrelid = c.oid and pol.polpermissive and pol.polcmd in (cmd.code, '*')
                      and exists (select 1 from unnest(pol.polroles) pr where pr = 0 or pg_has_role(r.oid, pr, 'member')));
  if problem is not null then
    raise exception using errcode = '42501',
      message = format('cleanup policy: row level security on %s gives %s no %s policy, so cleanup would find nothing to delete', p.tbl, runner, problem),
      hint = format('For a kit table: select ballast.owner_only_policy(%L); otherwise: create policy cleanup on %s for all to %I using (true);',
                    p.tbl::text, p.tbl, runner);
  end if;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp; -- volatile: EXPLAIN is a utility statement
comment on function ballast.check_cleanup_policy(ballast.cleanup_policies) is
  E'Raises when a cleanup policy cannot run safely: not a plain table (42809), no such column (42703), not a time column or extra_condition not boolean (42804), retain/batch_size/schedule out of range (22023), extra_condition not one expression (42601), no index leading with the time column (55000), no privilege or no row level security policy for the job''s role (42501).';

---- tg_cleanup_policies__validate
---- Every insert and update of a policy is checked, whoever writes it (add_cleanup_policy or UPDATE).
create or replace function ballast.tg_cleanup_policies__validate()
returns trigger as $$
begin
  perform ballast.check_cleanup_policy(NEW);
  if TG_OP = 'UPDATE' then
    NEW.updated_at := now();
  end if;
  return NEW;
end;
$$ language plpgsql volatile;
comment on function ballast.tg_cleanup_policies__validate() is
  E'Trigger: validates a cleanup policy before it is stored and stamps updated_at.';

---- cleanup_job_name
---- The pg_cron job name of a policy (pg_cron names are at most 63 bytes).
create or replace function ballast.cleanup_job_name(tbl regclass)
returns text as $$
  select case when octet_length('ballast cleanup ' || q) <= 63 then 'ballast cleanup ' || q
              else 'ballast cleanup ' || left(md5(q), 16) end
  from (select ballast.qualified_name(tbl) as q) x
$$ language sql stable;
comment on function ballast.cleanup_job_name(regclass) is
  E'Name of the pg_cron job that runs a cleanup policy: ''ballast cleanup <schema>.<table>''.';

---- cleanup_job_command
---- The SQL the pg_cron job of a policy runs: one CALL, so the procedure may commit per batch.
create or replace function ballast.cleanup_job_command(p ballast.cleanup_policies)
returns text as $$
  select format('call ballast.run_cleanup(%L, %L)', p.max_runtime, ballast.qualified_name(p.tbl))
$$ language sql stable;
comment on function ballast.cleanup_job_command(ballast.cleanup_policies) is
  E'The command of a cleanup policy''s pg_cron job: call ballast.run_cleanup(<max_runtime>, ''<table>'').';

---- cleanup_job_id
---- The pg_cron job id of a policy's job, or null (no job, or no pg_cron in this database).
create or replace function ballast.cleanup_job_id(tbl regclass)
returns bigint as $$
declare
  id bigint;
begin
  if to_regnamespace('cron') is null then
    return null;
  end if;
  execute 'select jobid from cron.job where jobname = $1 and username = $2'
    into id
    using ballast.cleanup_job_name(tbl),
          (select r.rolname from pg_class c join pg_roles r on r.oid = c.relowner where c.oid = 'ballast.cleanup_policies'::regclass);
  return id;
end;
$$ language plpgsql stable;
comment on function ballast.cleanup_job_id(regclass) is
  E'Id of the pg_cron job of a cleanup policy, null when it has none or pg_cron is not in this database.';

---- cleanup_sync_schedules
---- Makes pg_cron's jobs match the policies: one job per enabled policy, none for anything else.
create or replace function ballast.cleanup_sync_schedules()
returns void as $$
declare
  j record;
begin
  if to_regnamespace('cron') is null then
    return; -- the shadow database, or a server without pg_cron in this database
  end if;
  for j in
    select c.jobname from cron.job c
    where c.username = current_user and c.jobname like 'ballast cleanup %'
      and c.jobname not in (select ballast.cleanup_job_name(p.tbl) from ballast.cleanup_policies p
                            where p.enabled and exists (select 1 from pg_class k where k.oid = p.tbl))
  loop
    perform ballast.unschedule_job(j.jobname);
  end loop;
  for j in
    select ballast.cleanup_job_name(p.tbl) as jobname, p.schedule, ballast.cleanup_job_command(p) as command
    from ballast.cleanup_policies p
    where p.enabled and exists (select 1 from pg_class k where k.oid = p.tbl)
  loop
    if not exists (select 1 from cron.job c where c.jobname = j.jobname and c.username = current_user
                   and c.schedule = j.schedule and c.command = j.command and c.database = current_database()) then
      perform cron.schedule(j.jobname, j.schedule, j.command);
    end if;
  end loop;
end;
$$ language plpgsql volatile security definer set search_path = pg_catalog, pg_temp;
comment on function ballast.cleanup_sync_schedules() is
  E'Schedules one pg_cron job per enabled cleanup policy (as the owner, so jobs run as the owner) and unschedules the rest; a no-op without pg_cron.';

---- tg_cleanup_policies__schedule
---- After any change to the policies, pg_cron's jobs follow.
create or replace function ballast.tg_cleanup_policies__schedule()
returns trigger as $$
begin
  perform ballast.cleanup_sync_schedules();
  return null;
end;
$$ language plpgsql volatile;
comment on function ballast.tg_cleanup_policies__schedule() is
  E'Trigger: keeps pg_cron jobs in sync with ballast.cleanup_policies after every insert, update or delete.';

drop trigger if exists _100_validate on ballast.cleanup_policies;
create trigger _100_validate before insert or update on ballast.cleanup_policies
  for each row execute function ballast.tg_cleanup_policies__validate();
drop trigger if exists _500_schedule on ballast.cleanup_policies;
create trigger _500_schedule after insert or update or delete on ballast.cleanup_policies
  for each statement execute function ballast.tg_cleanup_policies__schedule();

---- add_cleanup_policy
---- Creates or replaces the retention policy of a table (validated; its pg_cron job follows).
create or replace function ballast.add_cleanup_policy(
  tbl regclass,
  time_column name,
  retain interval,
  batch_size int default 1000,
  schedule text default '17 * * * *',
  extra_condition text default null,
  max_runtime interval default '50 seconds',
  batch_pause interval default '60 milliseconds'
) returns ballast.cleanup_policies as $$
  insert into ballast.cleanup_policies as p (tbl, time_column, retain, batch_size, schedule, extra_condition, max_runtime, batch_pause)
  values (tbl, time_column, retain, batch_size, schedule, extra_condition, max_runtime, batch_pause)
  on conflict (tbl) do update set
    time_column = excluded.time_column, retain = excluded.retain, batch_size = excluded.batch_size,
    schedule = excluded.schedule, extra_condition = excluded.extra_condition,
    max_runtime = excluded.max_runtime, batch_pause = excluded.batch_pause, enabled = true
  returning p.*
$$ language sql volatile;
comment on function ballast.add_cleanup_policy(regclass, name, interval, int, text, text, interval, interval) is
  E'Delete rows of tbl whose time_column is older than now() - retain (and that satisfy extra_condition), batch_size rows per transaction, on the pg_cron schedule (UTC). Refuses (with the create index that fixes it) when no index leads with time_column, and refuses retain <= 0, batch_size <= 0, a bad schedule or an extra_condition that is not one boolean expression on tbl. Calling it again replaces the policy.';

---- drop_cleanup_policy
---- Removes the retention policy of a table and its pg_cron job; false when there was none.
create or replace function ballast.drop_cleanup_policy(tbl regclass)
returns boolean as $$
declare
  found_one boolean;
begin
  if tbl is null then
    raise exception using errcode = '22004', message = 'drop_cleanup_policy: tbl must not be null';
  end if;
  delete from ballast.cleanup_policies p where p.tbl = drop_cleanup_policy.tbl;
  get diagnostics found_one = row_count;
  return found_one;
end;
$$ language plpgsql volatile;
comment on function ballast.drop_cleanup_policy(regclass) is
  E'Remove the cleanup policy of a table and unschedule its pg_cron job. Returns false when the table had no policy. Built-in policies come back on the next migrate: switch them off with update ballast.cleanup_policies set enabled = false instead.';

---- cleanup_lock_key
---- The advisory lock that lets one session at a time clean a table: (1650551916 = 'ball', table oid).
create or replace function ballast.cleanup_lock_key(tbl regclass)
returns int as $$
  select (tbl::oid::bigint)::bit(32)::int
$$ language sql immutable parallel safe;
comment on function ballast.cleanup_lock_key(regclass) is
  E'Second key of the advisory lock run_cleanup() holds while it cleans a table (first key 1650551916); in pg_locks: classid 1650551916, objid = the table''s oid.';

---- cleanup_batch
---- Deletes one batch of a policy's rows older than the cutoff; never waits for a row lock.
create or replace function ballast.cleanup_batch(tbl regclass, cutoff timestamptz default null)
returns int as $$
declare
  p ballast.cleanup_policies;
  filter text;
  ord text := '';
  n int;
begin
  select * into p from ballast.cleanup_policies c where c.tbl = cleanup_batch.tbl;
  if not found then
    raise exception using errcode = '22023', message = format('cleanup_batch: %s has no cleanup policy', tbl),
      hint = 'select ballast.add_cleanup_policy(...) first.';
  end if;
  cutoff := coalesce(cutoff, now() - p.retain);
  if cutoff > now() - p.retain then
    raise exception using errcode = '22023',
      message = format('cleanup_batch: cutoff %s is inside the retention of %s (%s)', cutoff, tbl, p.retain);
  end if;
  -- the contract with capabilities that protect their tables (the audit log's append-only trigger):
  -- a DELETE from the cleanup path says so, for this transaction (run_cleanup() commits right after;
  -- left set until then so deferred triggers see it too)
  perform set_config('ballast.cleanup_table', ballast.qualified_name(p.tbl), true);
  filter := format('%I < $1', p.time_column) || coalesce(' and (' || p.extra_condition || ')', '');
  if exists (select 1 from pg_class ic join pg_am am on am.oid = ic.relam
             where ic.oid = ballast.cleanup_index(p.tbl, p.time_column) and am.amname = 'btree') then
    ord := format(' order by %I', p.time_column); -- oldest first, straight down the index
  end if;
  -- ctid = any(array(...)) is a TID scan; the filter is checked again on the locked row versions
  execute format('delete from %1$s where ctid = any (array(select ctid from %1$s where %2$s%3$s limit $2 for update skip locked)) and %2$s',
                 p.tbl, filter, ord)
    using cutoff, p.batch_size;
  get diagnostics n = row_count;
  return n;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp set lock_timeout = '5s';
comment on function ballast.cleanup_batch(regclass, timestamptz) is
  E'Delete one batch (batch_size rows) of the table''s rows past retention (time_column < cutoff, default now() - retain, never later) that satisfy extra_condition, skipping rows other transactions hold locked. Sets ballast.cleanup_table for the transaction. Returns the rows deleted.';

---- cleanup_may_delete
---- For tables that refuse deletes (the audit log): is this DELETE the cleanup path, of a row past retention?
create or replace function ballast.cleanup_may_delete(tbl regclass, row_time timestamptz)
returns boolean as $$
  select coalesce(current_setting('ballast.cleanup_table', true) = ballast.qualified_name(tbl)
                  and exists (select 1 from ballast.cleanup_policies p
                              where p.tbl = cleanup_may_delete.tbl and row_time < now() - p.retain), false)
$$ language sql stable;
comment on function ballast.cleanup_may_delete(regclass, timestamptz) is
  E'True when the current transaction is run_cleanup() deleting from tbl (ballast.cleanup_table is set to it) and row_time is past the retain of tbl''s policy. For append-only triggers: if not ballast.cleanup_may_delete(TG_RELID::regclass, OLD.<time column>) then raise. A cooperative marker, not a privilege: whoever may DELETE could set it too.';

---- run_cleanup
---- Runs the cleanup policies (or one): a transaction per batch, until done or max_runtime.
create or replace procedure ballast.run_cleanup(max_runtime interval default '50 seconds', "only" regclass default null)
as $$
declare
  deadline timestamptz;
  todo regclass[];
  t regclass;
  p ballast.cleanup_policies;
  run_id bigint;
  cutoff timestamptz;
  n int;
  stop text;
  err text;
  errstate text;
  first boolean;
begin
  if max_runtime is null or max_runtime <= interval '0' or max_runtime > interval '1 day' then
    raise exception using errcode = '22023',
      message = format('run_cleanup: max_runtime must be more than 0 and at most 1 day, got %s', coalesce(max_runtime::text, 'null'));
  end if;
  if "only" is not null and not exists (select 1 from ballast.cleanup_policies c where c.tbl = "only") then
    raise exception using errcode = '22023', message = format('run_cleanup: %s has no cleanup policy', "only"),
      hint = 'select tbl from ballast.cleanup_policies lists the tables that have one.';
  end if;
  -- Fails here ("invalid transaction termination") when called inside a transaction block, before
  -- any advisory lock is taken: a session-level lock would outlive the rolled-back transaction.
  commit;
  deadline := clock_timestamp() + max_runtime;
  -- least recently run first, so a short max_runtime is shared fairly between policies
  select array_agg(c.tbl order by (select max(r.started_at) from ballast.cleanup_runs r where r.policy = c.tbl) nulls first, c.tbl::oid)
    into todo
  from ballast.cleanup_policies c
  where ("only" is null and c.enabled) or c.tbl = "only";
  commit;
  foreach t in array coalesce(todo, '{}') loop
    exit when clock_timestamp() >= deadline;
    if not exists (select 1 from pg_class k where k.oid = t) then
      raise notice 'run_cleanup: the table of policy % no longer exists; drop the policy', t::oid;
      continue;
    end if;
    -- the lock is per session and reentrant: a lock this session kept from an interrupted call is reused
    if not exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.pid = pg_backend_pid()
                   and l.classid = 1650551916 and l.objid = t::oid and l.objsubid = 2)
       and not pg_try_advisory_lock(1650551916, ballast.cleanup_lock_key(t)) then
      raise notice 'run_cleanup: % skipped, another session is cleaning it', t;
      continue;
    end if;
    select * into p from ballast.cleanup_policies c where c.tbl = t;
    if not found then -- dropped meanwhile
      perform pg_advisory_unlock(1650551916, ballast.cleanup_lock_key(t));
      continue;
    end if;
    -- a run still open here was interrupted (we hold the lock, so nobody is running it)
    update ballast.cleanup_runs r set finished_at = clock_timestamp(), stopped_by = 'error',
      error = 'interrupted: cancelled, or its session ended'
    where r.policy = t and r.finished_at is null;
    cutoff := now() - p.retain;
    insert into ballast.cleanup_runs (policy, table_name, started_at, cutoff)
    values (t, ballast.qualified_name(t), clock_timestamp(), cutoff)
    returning id into run_id;
    commit;
    stop := null;
    err := null;
    errstate := null;
    first := true;
    loop
      -- Everything that can fail or be cancelled runs inside an exception block, so the run is always
      -- closed and the lock released; COMMIT may not run inside one, so it follows each block.
      if not first and p.batch_pause > interval '0' and clock_timestamp() < deadline then
        begin
          perform pg_sleep(extract(epoch from p.batch_pause)); -- its own short transaction: no locks held
        exception when query_canceled or others then
          get stacked diagnostics err = message_text, errstate = returned_sqlstate;
          stop := 'error';
        end;
        commit;
        exit when stop is not null;
      end if;
      begin
        if not first and clock_timestamp() >= deadline then
          stop := 'max_runtime';
        else
          n := ballast.cleanup_batch(t, cutoff);
          if n > 0 then
            update ballast.cleanup_runs r set rows_deleted = r.rows_deleted + n, batches = r.batches + 1 where r.id = run_id;
          end if;
          if n < p.batch_size then
            stop := 'done';
          end if;
        end if;
      exception when query_canceled or others then
        get stacked diagnostics err = message_text, errstate = returned_sqlstate;
        stop := 'error';
      end;
      commit; -- one transaction per batch: row locks and WAL never pile up
      first := false;
      exit when stop is not null;
    end loop;
    update ballast.cleanup_runs r set finished_at = clock_timestamp(), stopped_by = stop,
      error = case when err is not null then errstate || ': ' || err end
    where r.id = run_id;
    commit;
    perform pg_advisory_unlock(1650551916, ballast.cleanup_lock_key(t));
    if errstate = '57014' then -- cancelled: recorded, now stop as asked
      raise exception using errcode = '57014', message = err;
    end if;
  end loop;
end;
$$ language plpgsql;
comment on procedure ballast.run_cleanup(interval, regclass) is
  E'Run the enabled cleanup policies (or only the named table''s): batches picked with FOR UPDATE SKIP LOCKED, one transaction each, until nothing is left or max_runtime is reached; a policy another session is running is skipped. Each pass is recorded in ballast.cleanup_runs. Call it at top level (not inside BEGIN): call ballast.run_cleanup(''50 seconds'') or call ballast.run_cleanup(''10 minutes'', ''my_schema.my_table'').';

---- cleanup_rows_behind
---- A policy's rows past retention: counted up to 10,000, the planner's estimate beyond (cheap either way).
create or replace function ballast.cleanup_rows_behind(tbl regclass)
returns bigint as $$
declare
  p ballast.cleanup_policies;
  plan json;
  filter text;
  n bigint;
begin
  select * into p from ballast.cleanup_policies c where c.tbl = cleanup_rows_behind.tbl;
  if not found or ballast.cleanup_index_problem(p.tbl, p.time_column) is not null then
    return null;
  end if;
  filter := format('%I < %L::timestamptz', p.time_column, now() - p.retain) || coalesce(' and (' || p.extra_condition || ')', '');
  -- exact up to 10,000 rows (an index range scan), the planner's estimate beyond
  execute format('select count(*) from (select 1 from %s where %s limit 10000) x', p.tbl, filter) into n;
  if n < 10000 then
    return n;
  end if;
  execute format('explain (format json) select 1 from %s where %s', p.tbl, filter) into plan;
  return greatest(n, (plan -> 0 -> 'Plan' ->> 'Plan Rows')::bigint);
exception when others then
  return null;
end;
$$ language plpgsql volatile set search_path = pg_catalog, pg_temp; -- volatile: EXPLAIN
comment on function ballast.cleanup_rows_behind(regclass) is
  E'Rows of a cleanup policy''s table that are past retention: exact up to 10,000, beyond that the planner''s estimate (as fresh as the table''s statistics); null when it cannot tell.';

---- cleanup_schedules_behind
---- How many scheduled runs of a policy passed since it last caught up (a run that ended 'done').
create or replace function ballast.cleanup_schedules_behind(tbl regclass, at timestamptz default now())
returns int as $$
declare
  p ballast.cleanup_policies;
  t timestamptz;
  n int := 0;
begin
  select * into p from ballast.cleanup_policies c where c.tbl = cleanup_schedules_behind.tbl;
  if not found then
    return null;
  end if;
  -- since the last pass that caught up, or since the policy was last changed
  t := greatest(p.updated_at, (select max(r.started_at) from ballast.cleanup_runs r where r.policy = p.tbl and r.stopped_by = 'done'));
  loop
    t := ballast.cron_next(p.schedule, t);
    -- a run that may still be going on (within max_runtime and a minute of its start) is not missed yet
    exit when t is null or t > at - (p.max_runtime + interval '1 minute') or n >= 100;
    n := n + 1;
  end loop;
  return n;
end;
$$ language plpgsql stable;
comment on function ballast.cleanup_schedules_behind(regclass, timestamptz) is
  E'Scheduled runs of a cleanup policy that passed since its last run that ended done (or since the policy changed), at most 100.';

---- cleanup_status
---- One row per policy: its last run, rows past retention (estimate), schedules missed, next run.
drop view if exists ballast.cleanup_status;
create view ballast.cleanup_status as
  select p.tbl as policy,
         coalesce(ballast.qualified_name(p.tbl), p.tbl::oid::text) as table_name,
         p.enabled, p.builtin, p.time_column, p.retain, p.batch_size, p.schedule, p.extra_condition,
         r.started_at as last_run_at,
         r.finished_at as last_finished_at,
         r.stopped_by as last_stopped_by,
         r.rows_deleted as last_rows_deleted,
         r.error as last_error,
         ballast.cleanup_rows_behind(p.tbl) as rows_behind,
         ballast.cleanup_schedules_behind(p.tbl) as schedules_behind,
         j.jobid as cron_jobid,
         case when p.enabled and j.jobid is not null then ballast.cron_next(p.schedule, now()) end as next_run_at
  from ballast.cleanup_policies p
  left join lateral (select * from ballast.cleanup_runs r where r.policy = p.tbl order by r.started_at desc limit 1) r on true
  left join lateral (select ballast.cleanup_job_id(p.tbl) as jobid) j on true;
comment on view ballast.cleanup_status is
  E'Per cleanup policy: last run (when, how it stopped, rows deleted, error), rows past retention (planner estimate), scheduled runs missed since it last caught up, pg_cron job and next scheduled run (UTC schedule).';

---- cleanup_builtin_policies
---- The policies ballast installs when their tables exist (users may adjust them; they are kept).
create or replace function ballast.cleanup_builtin_policies()
returns table (tbl text, time_column name, retain interval, batch_size int, schedule text, why text) as $$
  values
    -- expires_at is when a key stops being valid; an hour of grace past expiry, hourly
    ('ballast.idempotency_keys', 'expires_at'::name, interval '1 hour', 1000, '7 * * * *', 'idempotency keys an hour after they expire'),
    -- unprocessed rows have processed_at null and never match
    -- an hour of delivered rows feeds cache_invalidation_stats.delivered_last_hour; kept small, so every 5 minutes
    ('ballast.cache_invalidation_queue', 'processed_at'::name, interval '1 hour', 1000, '*/5 * * * *', 'delivered cache invalidations an hour after delivery'),
    ('ballast.performance_metrics', 'created_at'::name, interval '7 days', 1000, '37 * * * *', 'request metrics older than 7 days'),
    ('ballast.mv_refresh_log', 'started_at'::name, interval '30 days', 1000, '47 3 * * *', 'materialized view refresh log older than 30 days'),
    ('ballast.cleanup_runs', 'started_at'::name, interval '30 days', 1000, '52 3 * * *', 'cleanup runs older than 30 days')
    -- Not pg_cron's own log (cron.job_run_details): it is not the kit's table. Installed by a superuser, a
    -- policy there would delete every application's run history; an app that wants it adds the policy
    -- itself (the example app does, in example/sql/app_cleanup.sql).
$$ language sql immutable;
comment on function ballast.cleanup_builtin_policies() is
  E'The cleanup policies ballast installs when their table exists. The audit log has none by default: add one to opt in.';

---- install_builtin_cleanup_policies
---- Adds the built-in policies whose tables exist; one that is there already (perhaps adjusted) stays.
create or replace function ballast.install_builtin_cleanup_policies()
returns setof text as $$
declare
  b record;
begin
  for b in select * from ballast.cleanup_builtin_policies() loop
    continue when to_regclass(b.tbl) is null;
    begin
      insert into ballast.cleanup_policies (tbl, time_column, retain, batch_size, schedule, builtin)
      values (to_regclass(b.tbl), b.time_column, b.retain, b.batch_size, b.schedule, true)
      on conflict on constraint cleanup_policies_pkey do nothing;
      if found then
        return next b.tbl;
      end if;
    exception when others then
      -- say so and go on: verify__cleanup() reports it with the statement that fixes it, and the
      -- rest of the migrate is not held hostage by another capability's missing index
      raise warning 'cleanup: built-in policy for % not installed: %', b.tbl, sqlerrm;
    end;
  end loop;
end;
$$ language plpgsql volatile;
comment on function ballast.install_builtin_cleanup_policies() is
  E'Installs the built-in cleanup policies whose tables exist and returns the ones it added; existing policies are left as they are (adjustments survive).';

select ballast.install_builtin_cleanup_policies();

-- Tables renamed or dropped since the last migrate: bring the pg_cron jobs back in line.
select ballast.cleanup_sync_schedules();

---- verify__cleanup
---- Every policy can use an index, is scheduled and is at most 2 schedules behind; built-ins present.
create or replace function ballast.verify__cleanup()
returns table (check_name text, ok boolean, detail text) as $$
  select 'cleanup index ' || coalesce(ballast.qualified_name(p.tbl), p.tbl::oid::text),
         x.problem is null,
         coalesce(x.problem, format('%s (%s) via %s', p.time_column, p.retain, ballast.cleanup_index(p.tbl, p.time_column)))
  from ballast.cleanup_policies p,
       lateral (select ballast.cleanup_index_problem(p.tbl, p.time_column) as problem) x
  union all
  select 'cleanup schedule ' || coalesce(ballast.qualified_name(p.tbl), p.tbl::oid::text),
         x.behind <= 2 and (to_regnamespace('cron') is null or x.jobid is not null),
         case when to_regnamespace('cron') is not null and x.jobid is null then
                'no pg_cron job ' || quote_literal(ballast.cleanup_job_name(p.tbl)) || ': npm run migrate re-creates it (select ballast.cleanup_sync_schedules())'
              when x.behind > 2 then
                format('%s scheduled runs (%s) since it last caught up; last run: %s', x.behind, p.schedule,
                       coalesce((select format('%s, stopped by %s%s', r.started_at, coalesce(r.stopped_by, 'nothing yet (running)'),
                                               coalesce(': ' || r.error, ''))
                                 from ballast.cleanup_runs r where r.policy = p.tbl order by r.started_at desc limit 1), 'never'))
              else format('%s behind (schedule %s%s)', x.behind, p.schedule,
                          case when to_regnamespace('cron') is null then ', no pg_cron here' else ', job ' || x.jobid end)
         end
  from ballast.cleanup_policies p,
       lateral (select ballast.cleanup_schedules_behind(p.tbl) as behind, ballast.cleanup_job_id(p.tbl) as jobid) x
  where p.enabled
  union all
  select 'cleanup builtin ' || b.tbl,
         exists (select 1 from ballast.cleanup_policies c where c.tbl = to_regclass(b.tbl)),
         case when exists (select 1 from ballast.cleanup_policies c where c.tbl = to_regclass(b.tbl)) then b.why
              else 'not installed: ' || coalesce(ballast.cleanup_index_problem(to_regclass(b.tbl), b.time_column),
                                                 'see the warning of sql/cleanup.sql (npm run migrate)') end
  from ballast.cleanup_builtin_policies() b
  where to_regclass(b.tbl) is not null
$$ language sql stable;
comment on function ballast.verify__cleanup() is
  E'Cleanup checks for verify_migration_success(): each policy has an index leading with its time column, a pg_cron job, and is at most 2 schedules behind; each built-in policy whose table exists is installed.';

---- metrics__cleanup
---- Gauges for the API's /metrics (ballast.metrics_snapshot() in sql/api.sql): seconds since each policy last finished a run.
create or replace function ballast.metrics__cleanup()
returns table (metric text, help text, labels jsonb, value double precision) as $$
  select 'ballast_cleanup_seconds_since_run', 'Seconds since a cleanup policy last finished a run',
         jsonb_build_object('policy', r.policy::text), extract(epoch from now() - max(r.finished_at))::float8
  from ballast.cleanup_runs r where r.finished_at is not null group by r.policy::text
$$ language sql stable set search_path = pg_catalog, pg_temp;
comment on function ballast.metrics__cleanup() is
  E'Gauges for /metrics: seconds since each cleanup policy last finished a run (cleanup lag).';

-- sql/privileges.sql
-- The kit's functions run only where granted (graphile/starter's default). PostgreSQL grants EXECUTE to
-- PUBLIC on every new function, and a per-schema ALTER DEFAULT PRIVILEGES cannot take that back (it only
-- adds to the global defaults, which belong to the installing role and are not the kit's to change). So,
-- after every other definition, this file revokes EXECUTE from PUBLIC on all of the kit's functions and procedures and
-- grants it back to the few meant for everyone. Grants to the kit's own roles are in each capability's file.
revoke execute on all routines in schema ballast from public;

-- ballast.version(): anyone may ask which kit is installed.
-- ballast.record_refresh_request(): the refresh queue's source triggers run as the writer, whoever that is;
-- it only ever marks a registered view stale.
grant execute on function ballast.version(), ballast.record_refresh_request(regclass) to public;

insert into ballast.installs (version, definitions_sha1) values ('0.1.0', '6eeb1d0253356174987fcf33bde6c6a883d0d4c2');
\endif
commit;
select pg_advisory_unlock(hashtext('ballast install'));
