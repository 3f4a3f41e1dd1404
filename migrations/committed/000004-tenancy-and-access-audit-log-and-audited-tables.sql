--! Previous: sha1:c45ad97b490f9f7058e4fa46f847a1c274229249
--! Hash: sha1:9ae68a35431df5463a857efd1de5b675b6f71e80
--! Message: tenancy and access: audit log and audited tables

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
  actor_id uuid,                     -- the JWT subject (request.jwt.claims ->> 'sub'); null without a session
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
