--! Previous: sha1:2c8ad7442fc8b6672752621865d57b13c5500f56
--! Hash: sha1:c828264e35900ab3676ab28cbf4b207f293507d5
--! Message: admin page: audit log entry type

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
