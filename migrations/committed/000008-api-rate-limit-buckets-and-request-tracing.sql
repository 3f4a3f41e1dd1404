--! Previous: sha1:a1f83a25bf12cd151dd92b4fa23e0186710fd545
--! Hash: sha1:2c8ad7442fc8b6672752621865d57b13c5500f56
--! Message: api: rate-limit buckets and request tracing

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
