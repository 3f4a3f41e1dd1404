--! Previous: sha1:9aa742d1a547d43642be19fc8a1d9d97bb637a6a
--! Hash: sha1:c45ad97b490f9f7058e4fa46f847a1c274229249
--! Message: cleanup: retention policies and runs

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
  batch_pause interval not null default '20 milliseconds' -- sleep between batches: leaves writers CPU, I/O, WAL
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
