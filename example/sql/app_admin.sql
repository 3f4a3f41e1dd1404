-- The admin page's reads (/admin, example/admin/): the organisation's audit log with filters, paginated by
-- PostGraphile, and the operational health panels (platform-wide, so for operators only). Both refuse
-- anyone but an admin of the session's organisation with 42501, so a member sees why (the API's "why
-- denied" hint) instead of an empty page.
-- The example users that `npm start` seeds in development, for the page's token-minting page, are here too.

---- assert_current_org_admin
---- Raises 42501, naming the function and what it does, unless the session is an admin of its organisation.
create or replace function app_private.assert_current_org_admin(fn text, action text)
returns void as $$
begin
  if not app_private.is_current_org_admin() then
    raise exception 'permission denied for function %: only an administrator of the organisation may %', fn, action
      using errcode = '42501',
            hint = 'Sign in with a token whose role claim is admin, as a user whom app_public.memberships lists as an admin of the organisation.';
  end if;
end;
$$ language plpgsql stable;
comment on function app_private.assert_current_org_admin(text, text) is
  E'Raise 42501 (the API turns it into a "why denied" hint) unless the session''s role claim is admin and app_public.memberships agrees; fn and action name what was refused.';
grant execute on function app_private.assert_current_org_admin(text, text) to ballast_member, ballast_admin;

---- audit_log_arguments_valid
---- The checks of app_public.audit_log(): raises 42501 for anyone but an org admin, 22023 for bad filters.
create or replace function app_private.audit_log_arguments_valid(table_name text, request_id text, since timestamptz, until timestamptz)
returns boolean as $$
begin
  perform app_private.assert_current_org_admin('audit_log', 'read its audit log');
  if since is not null and until is not null and since > until then
    raise exception 'audit_log: since (%) is after until (%); give a range that starts before it ends', since, until
      using errcode = '22023';
  end if;
  if table_name is not null and not exists (select 1 from ballast.audited_tables_list() t where t = audit_log_arguments_valid.table_name) then
    raise exception 'audit_log: table_name % is not an audited table; audited tables are: %',
      quote_literal(table_name), (select string_agg(t, ', ' order by t) from ballast.audited_tables_list() t)
      using errcode = '22023';
  end if;
  if request_id is not null and (length(request_id) = 0 or length(request_id) > 200) then
    raise exception 'audit_log: request_id must be 1 to 200 characters, got %', length(request_id) using errcode = '22023';
  end if;
  return true;
end;
$$ language plpgsql stable;
comment on function app_private.audit_log_arguments_valid(text, text, timestamptz, timestamptz) is
  E'True, or raises: 42501 unless the session is an admin of its organisation, 22023 for since after until, a table that is not audited, or an empty or overlong request id. The checks of app_public.audit_log().';
grant execute on function app_private.audit_log_arguments_valid(text, text, timestamptz, timestamptz) to ballast_member, ballast_admin;

---- audit_log
---- The session organisation's audit log, newest first, filtered by table, actor, request id and time.
-- A plain SQL function so that PostgreSQL inlines it into PostGraphile's query: the page's LIMIT then
-- reaches the index scan on (org_id, id), where a PL/pgSQL RETURN QUERY would first materialise the
-- organisation's whole log on every page. The argument check has no column in it, so the planner runs it
-- once, as a gating condition, before reading any row.
create or replace function app_public.audit_log(
  table_name text default null,
  actor_id uuid default null,
  request_id text default null,
  since timestamptz default null,
  until timestamptz default null)
returns setof app_public.audit_log_entry as $$
  -- RLS on ballast.audit_log (audit_log_org_admin_read with the app's rule, the setting audit_admin_rule) limits the rows to
  -- the session's organisation; the filter on org_id lets the planner use audit_log_org_id_idx.
  -- The kit records the subject as text; this app's users are uuids, so a subject that is not one (no
  -- user of this app) shows as a null actor_id.
  -- An UPDATE's old_values and new_values hold the changed columns only (ballast stores diffs), so the
  -- changed columns are the keys of new_values.
  select a.id, a.occurred_at, a.table_name, a.op::text, a.record_id, a.old_values, a.new_values,
         case when a.op = 'UPDATE' then array(select jsonb_object_keys(a.new_values)) end,
         ballast.uuid_or_null(a.actor_id), u.name, a.request_id
    from ballast.audit_log a
    left join app_public.users u on u.id = ballast.uuid_or_null(a.actor_id)
   where app_private.audit_log_arguments_valid(audit_log.table_name, audit_log.request_id, audit_log.since, audit_log.until)
     and a.org_id = (select ballast.current_org_id())
     and (audit_log.table_name is null or a.table_name = audit_log.table_name)
     and (audit_log.actor_id is null or ballast.uuid_or_null(a.actor_id) = audit_log.actor_id)
     and (audit_log.request_id is null or a.request_id = audit_log.request_id)
     and (audit_log.since is null or a.occurred_at >= audit_log.since)
     and (audit_log.until is null or a.occurred_at < audit_log.until)
   order by a.id desc
$$ language sql stable;
comment on function app_public.audit_log(text, uuid, text, timestamptz, timestamptz) is
  E'The audit log of the session''s organisation, newest first; every filter is optional: table_name (schema.table, one of the audited tables), actor_id, request_id (the API''s X-Request-Id), since (inclusive) and until (exclusive). Only an admin of the organisation: anyone else gets 42501 with a hint. 22023 for an unknown table, an empty or overlong request id, or since after until.';
revoke all on function app_public.audit_log(text, uuid, text, timestamptz, timestamptz) from public;
grant execute on function app_public.audit_log(text, uuid, text, timestamptz, timestamptz) to ballast_member, ballast_admin;

-- Platform operators. An organisation's admin runs one tenant; the health panels (every cleanup policy's
-- condition and errors, every view's last error, the invalidation queue) describe the whole platform, so
-- they are for operators only. An operator needs BOTH the token claim "operator": true (read through the
-- kit's ballast.current_claims(), which the API fills with the token's claims unchanged) AND a row here,
-- the same two keys as an org admin (role claim + memberships): a token that claims operator for a user
-- not listed gets nothing extra. Not a database role: the API maps the role claim to ballast_member or
-- ballast_admin only, and an operator is also an admin of some organisation on the same page.
-- app_private.operators and app_private.operations_health_cache: example/migrations/committed/000002-*.sql.
select ballast.owner_only_policy('app_private.operators');
revoke all on app_private.operators from public, ballast_anonymous, ballast_member, ballast_admin;

---- is_current_operator
---- True when the token claims operator: true AND app_private.operators lists the session's user.
create or replace function app_private.is_current_operator()
returns boolean as $$
  select coalesce(ballast.current_claims() -> 'operator' = 'true'::jsonb
                  and exists (select 1 from app_private.operators o where o.user_id = ballast.current_user_id()), false)
$$ language sql stable;
comment on function app_private.is_current_operator() is
  E'Platform operator rights: the token claims "operator": true and app_private.operators lists the user. Reads app_private.operators, so only its owner''s functions (operations_health) can call it usefully.';
revoke all on function app_private.is_current_operator() from public;

select ballast.owner_only_policy('app_private.operations_health_cache');
revoke all on app_private.operations_health_cache from public, ballast_anonymous, ballast_member, ballast_admin;

---- platform_health_snapshot
---- The platform panels, measured now: invalidation queue, materialized views, cleanup policies (the costly part).
create or replace function app_private.platform_health_snapshot()
returns jsonb as $$
  select jsonb_build_object(
    'invalidation', (select to_jsonb(s) from ballast.cache_invalidation_stats s),
    -- the views' own columns, so a column added there reaches the page; staleness also in seconds
    'matviews', (select coalesce(jsonb_agg(to_jsonb(m) || jsonb_build_object('staleness_s', extract(epoch from m.staleness))
                                           order by m.matview::text), '[]')
      from ballast.matview_status m),
    'cleanup', (select coalesce(jsonb_agg(to_jsonb(c) order by c.table_name), '[]') from ballast.cleanup_status c))
$$ language sql volatile;
comment on function app_private.platform_health_snapshot() is
  E'The platform health panels measured now (ballast.cache_invalidation_stats, matview_status, cleanup_status: counts rows and EXPLAINs every cleanup table). Owner only; operations_health() serves it through the cache.';
revoke all on function app_private.platform_health_snapshot() from public;

---- cached_platform_health
---- The platform snapshot, taken again when older than max_age; one caller takes it, the others do not wait.
-- Volatile (it writes) although operations_health() is STABLE (so PostGraphile keeps it a query): a
-- volatile function takes a fresh snapshot per statement, so the re-read after the lock sees a
-- concurrent refresher's committed row. The transaction-scoped advisory lock, keyed by the cache table's
-- oid, lets one caller refresh; a caller that misses it serves the snapshot it read (at most a refresh
-- older), or, with none yet, waits for the refresher and reads its row.
create or replace function app_private.cached_platform_health(max_age interval)
returns jsonb as $$
declare
  lock_key constant bigint := 'app_private.operations_health_cache'::regclass::oid;
  c app_private.operations_health_cache;
begin
  select * into c from app_private.operations_health_cache where id;
  if c.taken_at > clock_timestamp() - max_age then
    return c.snapshot || jsonb_build_object('platform_checked_at', c.taken_at);
  end if;
  if not pg_try_advisory_xact_lock(lock_key) then
    if c.snapshot is not null then
      return c.snapshot || jsonb_build_object('platform_checked_at', c.taken_at);
    end if;
    perform pg_advisory_xact_lock(lock_key);
  end if;
  select * into c from app_private.operations_health_cache where id;  -- refreshed while we took the lock?
  if c.taken_at > clock_timestamp() - max_age then
    return c.snapshot || jsonb_build_object('platform_checked_at', c.taken_at);
  end if;
  insert into app_private.operations_health_cache as h (id, snapshot, taken_at)
    values (true, app_private.platform_health_snapshot(), clock_timestamp())
  on conflict (id) do update set snapshot = excluded.snapshot, taken_at = excluded.taken_at, refreshes = h.refreshes + 1
  returning * into c;
  return c.snapshot || jsonb_build_object('platform_checked_at', c.taken_at);
end;
$$ language plpgsql volatile;
comment on function app_private.cached_platform_health(interval) is
  E'The platform health snapshot (platform_health_snapshot()) with platform_checked_at, from app_private.operations_health_cache, taken again when older than max_age by one caller at a time. Owner only.';
revoke all on function app_private.cached_platform_health(interval) from public;

---- operations_health
---- The admin page's health: the tenant view for an org admin; the platform panels too for an operator.
create or replace function app_public.operations_health()
returns jsonb as $$
declare
  operator boolean;
begin
  perform app_private.assert_current_org_admin('operations_health', 'read the operations panels');
  operator := app_private.is_current_operator();
  return jsonb_build_object(
    'checked_at', now(),
    'audited_tables', (select coalesce(jsonb_agg(t), '[]') from ballast.audited_tables_list() t),
    'operator', operator)
    -- platform-wide, so operators only; cached 5 s, the page's Refresh cannot make the owner re-measure
    || case when operator then app_private.cached_platform_health(interval '5 seconds') else '{}' end;
end;
$$ language plpgsql stable security definer set search_path = pg_catalog, pg_temp;
comment on function app_public.operations_health() is
  E'The admin page''s health as one JSON object. Only an admin of the session''s organisation (42501 otherwise); they get checked_at, audited_tables (the tables whose changes the audit log holds) and operator. A platform operator (token claim "operator": true and a row in app_private.operators) also gets the platform panels, shared by all callers and taken again when older than 5 seconds: invalidation (ballast.cache_invalidation_stats), matviews (ballast.matview_status), cleanup (ballast.cleanup_status) and platform_checked_at. SECURITY DEFINER is safe because it checks admin and operator rights first and returns only operational state, no application rows; the views and tables it reads are owner-only.';
revoke all on function app_public.operations_health() from public;
grant execute on function app_public.operations_health() to ballast_member, ballast_admin;

---- seed_example_data
---- Development: two organisations with an admin and a member each, and a few funds. Idempotent.
create or replace function app_private.seed_example_data()
returns table (user_id uuid, user_name text, email text, org_id uuid, org_name text, role text) as $$
begin
  insert into app_public.organizations (id, name) values
    ('00000000-0000-4000-a000-00000000000a', 'Acme Capital'),
    ('00000000-0000-4000-a000-00000000000b', 'Globex Partners')
  on conflict (id) do nothing;
  insert into app_public.users (id, email, name) values
    ('00000000-0000-4000-b000-000000000001', 'ada@acme.example', 'Ada (admin, Acme)'),
    ('00000000-0000-4000-b000-000000000002', 'max@acme.example', 'Max (member, Acme)'),
    ('00000000-0000-4000-b000-000000000003', 'gia@globex.example', 'Gia (admin, Globex)')
  on conflict (id) do nothing;
  insert into app_public.memberships (org_id, user_id, role) values
    ('00000000-0000-4000-a000-00000000000a', '00000000-0000-4000-b000-000000000001', 'admin'),
    ('00000000-0000-4000-a000-00000000000a', '00000000-0000-4000-b000-000000000002', 'member'),
    ('00000000-0000-4000-a000-00000000000b', '00000000-0000-4000-b000-000000000003', 'admin')
  on conflict on constraint memberships_pkey do nothing;
  insert into app_public.funds (org_id, name, size, irr)
    select f.org_id::uuid, f.name, f.size, f.irr
      from (values ('00000000-0000-4000-a000-00000000000a', 'Acme Growth I', 25000000.00, 0.1420),
                   ('00000000-0000-4000-a000-00000000000a', 'Acme Credit II', 40000000.00, 0.0810),
                   ('00000000-0000-4000-a000-00000000000b', 'Globex Ventures', 12000000.00, 0.2150)) f (org_id, name, size, irr)
     where not exists (select 1 from app_public.funds x where x.org_id = f.org_id::uuid and x.name = f.name);
  return query
    select u.id, u.name, u.email, o.id, o.name, m.role
      from app_public.memberships m
      join app_public.users u on u.id = m.user_id
      join app_public.organizations o on o.id = m.org_id
     where u.id::text like '00000000-0000-4000-b000-%'
     order by o.name, m.role, u.name;
end;
$$ language plpgsql volatile;
comment on function app_private.seed_example_data() is
  E'Development only (npm start runs it with GRAPHILE_ENV=development): two organisations, an admin and a member of Acme Capital and an admin of Globex Partners, with fixed ids; returns them. Idempotent; runs as the caller (the owner).';
revoke all on function app_private.seed_example_data() from public;
