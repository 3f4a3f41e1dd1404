--! Previous: sha1:64ea5fef05af504bf5d9300a3538e6868aa2548c
--! Hash: sha1:4d3a1f8adaac9b7d5252e72b5010cca3a4837278
--! Message: refresh queue: registrations, requests, refresh log, example fund_stats view

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

-- The example app: per-organisation fund summary, refreshed through the queue (registered in
-- sql/app_fund_stats.sql). Created empty; the processor's first refresh populates it.
create materialized view app_private.fund_stats as
  select f.org_id,
         count(*)::int as fund_count,
         sum(f.size) as total_size,
         round(avg(f.irr), 4) as avg_irr,
         max(f.updated_at) as last_updated_at
  from app_public.funds f
  group by f.org_id
with no data;
create unique index fund_stats_org_id_idx on app_private.fund_stats (org_id);
comment on materialized view app_private.fund_stats is
  E'Per organisation: number of funds, committed capital, average IRR, last change. Refreshed by the refresh queue.';
