--! Previous: sha1:c8c9ab45a3ecfd4fbbda1d0455c08aff108c602a
--! Hash: sha1:9aa742d1a547d43642be19fc8a1d9d97bb637a6a
--! Message: example app: organizations, users, memberships, funds

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
