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
