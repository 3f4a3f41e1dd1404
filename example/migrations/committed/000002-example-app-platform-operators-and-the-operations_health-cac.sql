--! Previous: sha1:e3dc7e4aec9366c511335890f34aa28df01b7af6
--! Hash: sha1:8befe2ac2bf609b5cf20d3c203ca73c4fe7a7384
--! Message: example app: platform operators and the operations_health() cache

-- Platform operators and the operations_health() cache (example/sql/app_admin.sql has their functions).
create table app_private.operators (
  user_id uuid primary key references app_public.users (id) on delete cascade,
  added_at timestamptz not null default now()
);
comment on table app_private.operators is
  E'The users who may see platform-wide health (app_public.operations_health()) when their token also claims "operator": true. Rows are added by the owner (psql, a migration); no visitor reads or writes them.';

-- The last platform snapshot (one row): taking one counts the rows behind and EXPLAINs every cleanup
-- table as the owner, so callers within a few seconds share it. refreshes counts the snapshots taken.
create table app_private.operations_health_cache (
  id boolean primary key default true check (id),  -- at most one row
  snapshot jsonb not null,                          -- invalidation, matviews and cleanup panels
  taken_at timestamptz not null,                    -- clock time the snapshot was taken
  refreshes bigint not null default 1               -- snapshots taken since the row was created
);
comment on table app_private.operations_health_cache is
  E'The platform health snapshot app_public.operations_health() serves to operators, and when it was taken; owner only.';
alter table app_private.operators enable row level security;
alter table app_private.operators force row level security;
alter table app_private.operations_health_cache enable row level security;
alter table app_private.operations_health_cache force row level security;
