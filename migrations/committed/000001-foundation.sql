--! Previous: -
--! Hash: sha1:c8c9ab45a3ecfd4fbbda1d0455c08aff108c602a
--! Message: foundation

-- Schemas, privileges and the verification exemptions table.
-- Tables live in committed migrations; functions, views, triggers and policies live in sql/ and are
-- re-applied after every migrate (see docs/ARCHITECTURE.md).

create schema ballast;
comment on schema ballast is 'ballast: production safety rails (queues, idempotency, audit, cleanup, checks).';
create schema app_public;
comment on schema app_public is 'Example application: what PostGraphile exposes.';
create schema app_private;
comment on schema app_private is 'Example application: private tables and functions.';

-- Functions are not executable by everyone unless granted (graphile/starter's default).
alter default privileges revoke all on functions from public;
alter default privileges in schema ballast revoke all on functions from public;
alter default privileges in schema app_public revoke all on functions from public;
alter default privileges in schema app_private revoke all on functions from public;

grant usage on schema ballast to ballast_anonymous, ballast_member, ballast_admin, ballast_authenticator;
grant usage on schema app_public to ballast_anonymous, ballast_member, ballast_admin;

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
