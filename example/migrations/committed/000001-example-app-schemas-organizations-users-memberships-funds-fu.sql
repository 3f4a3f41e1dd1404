--! Previous: -
--! Hash: sha1:e3dc7e4aec9366c511335890f34aa28df01b7af6
--! Message: example app: schemas, organizations, users, memberships, funds, fund_stats, audit log entry type

-- The example application, ballast's first user: its schemas, tables and the materialized view the
-- refresh queue keeps fresh. The kit (schema ballast) is installed before these migrations by the .gmrc
-- hook `ballast migrate`; the example's functions, policies and kit registrations live in example/sql/.

create schema app_public;
comment on schema app_public is 'Example application: what PostGraphile exposes.';
create schema app_private;
comment on schema app_private is 'Example application: private tables and functions.';

-- Functions are not executable by everyone unless granted (graphile/starter's default).
alter default privileges revoke all on functions from public;
alter default privileges in schema app_public revoke all on functions from public;
alter default privileges in schema app_private revoke all on functions from public;

grant usage on schema app_public to ballast_anonymous, ballast_member, ballast_admin;

-- The example application that exercises the kit: organisations, users, memberships and funds.
-- RLS is enabled and forced on every table; the policies that open them to visitors live in sql/app.sql.

create table app_public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now()
);

create table app_public.users (
  id uuid primary key default gen_random_uuid(),
  email text not null unique check (email ~ '^[^@\s]+@[^@\s]+$'),
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now()
);

create table app_public.memberships (
  org_id uuid not null references app_public.organizations on delete cascade,
  user_id uuid not null references app_public.users on delete cascade,
  role text not null default 'member' check (role in ('member', 'admin')),
  created_at timestamptz not null default now(),
  primary key (org_id, user_id)
);
create index memberships_user_id_idx on app_public.memberships (user_id);

-- Funds, from the seeds: an organisation's investment funds.
create table app_public.funds (
  id bigint generated always as identity primary key,
  org_id uuid not null references app_public.organizations on delete cascade,
  name text not null check (length(name) between 1 and 200),
  size numeric(20, 2) not null default 0 check (size >= 0),  -- committed capital
  irr numeric(8, 4),                                          -- internal rate of return, 0.1234 = 12.34%
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index funds_org_id_idx on app_public.funds (org_id);

alter table app_public.organizations enable row level security;
alter table app_public.organizations force row level security;
alter table app_public.users enable row level security;
alter table app_public.users force row level security;
alter table app_public.memberships enable row level security;
alter table app_public.memberships force row level security;
alter table app_public.funds enable row level security;
alter table app_public.funds force row level security;

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

-- The admin page (/admin): an audit log entry as an organisation admin reads it through GraphQL
-- (app_public.audit_log in sql/app_admin.sql returns these).
create type app_public.audit_log_entry as (
  id bigint,
  occurred_at timestamptz,
  table_name text,
  op text,
  record_id uuid,
  old_values jsonb,
  new_values jsonb,
  changed_columns text[],
  actor_id uuid,
  actor_name text,
  request_id text
);
comment on type app_public.audit_log_entry is
  E'One audited change as the admin page shows it: the audit_log row, with the actor''s name when the admin may see that user.';
