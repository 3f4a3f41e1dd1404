-- verify_migration_success(): one call that says whether this database is production-ready.
-- Each capability contributes checks as functions named ballast.verify__<capability>() returning
-- (check_name, ok, detail); verify_migration_success() runs them all, in name order.

---- qualified_name
---- schema.name of a relation, always qualified (regclass output depends on search_path).
create or replace function ballast.qualified_name(obj regclass)
returns text as $$
  select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = obj
$$ language sql stable;
comment on function ballast.qualified_name(regclass) is
  E'schema.name of a relation, qualified whatever the search_path (how verify_exemptions stores objects).';

---- is_exempt
---- Whether an object is listed in verify_exemptions for a check.
create or replace function ballast.is_exempt(check_name text, obj regclass)
returns boolean as $$
  select exists (select 1 from ballast.verify_exemptions e
                 where e.check_name = is_exempt.check_name and e.object_name = ballast.qualified_name(obj))
$$ language sql stable;
comment on function ballast.is_exempt(text, regclass) is
  E'True when the object is listed in ballast.verify_exemptions for the given check.';

---- exempt
---- Records that an object is deliberately exempt from a check, with a reason.
create or replace function ballast.exempt(check_name text, obj regclass, reason text)
returns void as $$
begin
  if check_name is null or check_name not in ('rls', 'matview_unique_index') then
    raise exception using errcode = '22023',
      message = format('exempt: unknown check %L', check_name),
      hint = 'Checks that take exemptions: rls, matview_unique_index.';
  end if;
  if obj is null then
    raise exception using errcode = '22004', message = 'exempt: object must not be null';
  end if;
  if reason is null or length(trim(reason)) < 10 then
    raise exception using errcode = '22023',
      message = format('exempt: reason must say why in at least 10 characters, got %L', reason);
  end if;
  insert into ballast.verify_exemptions (check_name, object_name, reason)
  values (check_name, ballast.qualified_name(obj), reason)
  on conflict on constraint verify_exemptions_pkey do update set reason = excluded.reason;
end;
$$ language plpgsql volatile;
comment on function ballast.exempt(text, regclass, text) is
  E'Exempt an object from a verify_migration_success() check (rls or matview_unique_index), with a reason of at least 10 characters.';

---- applied_migration
---- The newest kit migration applied here; the API's readiness check compares it with the one it ships.
create or replace function ballast.applied_migration()
returns text as $$
  select m.name from ballast.migrations m order by m.id desc limit 1
$$ language sql stable security definer set search_path = pg_catalog;
comment on function ballast.applied_migration() is
  E'Name of the newest kit migration applied to this database, e.g. ''000001-ballast'' (for /health/ready).';
grant execute on function ballast.applied_migration() to ballast_authenticator;

---- verify__core
---- The foundation's checks: extensions, roles, RLS everywhere, matviews refreshable concurrently.
create or replace function ballast.verify__core()
returns table (check_name text, ok boolean, detail text) as $$
  -- extensions
  select 'extension pg_cron', exists (select 1 from pg_extension where extname = 'pg_cron'),
         case when exists (select 1 from pg_extension where extname = 'pg_cron') then 'installed'
              else format('missing: cron.database_name is %L, this database is %L',
                          current_setting('cron.database_name', true), current_database()) end
  union all
  -- roles and their attributes
  select format('role %s', want.name),
         r.oid is not null and r.rolcanlogin = want.login and not r.rolsuper and not r.rolbypassrls
           and (want.name <> 'ballast_authenticator' or not r.rolinherit),
         case when r.oid is null then 'missing'
              else format('login=%s inherit=%s superuser=%s bypassrls=%s (want login=%s%s, no superuser, no bypassrls)',
                          r.rolcanlogin, r.rolinherit, r.rolsuper, r.rolbypassrls, want.login,
                          case when want.name = 'ballast_authenticator' then ', noinherit' else '' end) end
  from (values ('ballast_owner', true), ('ballast_authenticator', true), ('ballast_anonymous', false),
               ('ballast_member', false), ('ballast_admin', false)) as want(name, login)
  left join pg_roles r on r.rolname = want.name
  union all
  select format('authenticator may become %s', v),
         coalesce(pg_has_role('ballast_authenticator', v, 'member'), false),
         'grant ' || v || ' to ballast_authenticator'
  from unnest(array['ballast_anonymous', 'ballast_member', 'ballast_admin']) v
  where exists (select 1 from pg_roles where rolname = v)
    and exists (select 1 from pg_roles where rolname = 'ballast_authenticator')
  union all
  select 'no BYPASSRLS but superusers', not exists (select 1 from pg_roles where rolbypassrls and not rolsuper),
         coalesce('roles with BYPASSRLS: ' || (select string_agg(rolname, ', ' order by rolname)
                                                from pg_roles where rolbypassrls and not rolsuper), 'none')
  union all
  -- RLS enabled and forced on every table of the kit and of the schemas configured in verify_schemas
  select 'rls ' || ballast.qualified_name(c.oid),
         (c.relrowsecurity and c.relforcerowsecurity) or ballast.is_exempt('rls', c.oid),
         case when c.relrowsecurity and c.relforcerowsecurity then 'enabled and forced'
              when ballast.is_exempt('rls', c.oid) then 'exempt: ' ||
                (select reason from ballast.verify_exemptions e where e.check_name = 'rls' and e.object_name = ballast.qualified_name(c.oid))
              else format('enabled=%s forced=%s: alter table %s enable row level security, force row level security',
                          c.relrowsecurity, c.relforcerowsecurity, c.oid::regclass) end
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and n.nspname = any(ballast.verify_schemas())
  union all
  -- every materialized view can be refreshed concurrently (index-wise)
  select 'matview ' || ballast.qualified_name(m.matview),
         m.concurrent_ok or m.reason like 'not populated%' or ballast.is_exempt('matview_unique_index', m.matview),
         case when ballast.is_exempt('matview_unique_index', m.matview) and not m.concurrent_ok then 'exempt: ' || m.reason
              else m.reason end
  from ballast.check_matview_unique_indexes() m
$$ language sql stable;
comment on function ballast.verify__core() is
  E'Foundation checks for verify_migration_success(): pg_cron, roles, BYPASSRLS, RLS on every table, matview unique indexes.';

---- verify_migration_success
---- Runs every ballast.verify__*() check function and returns one row per check.
create or replace function ballast.verify_migration_success()
returns table (check_name text, ok boolean, detail text) as $$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::regprocedure from pg_proc p
    where p.pronamespace = 'ballast'::regnamespace and p.proname like 'verify\_\_%' and p.pronargs = 0
    order by p.proname
  loop
    return query execute format('select check_name, ok, detail from %s', fn);
  end loop;
end;
$$ language plpgsql stable;
comment on function ballast.verify_migration_success() is
  E'Is this database production-ready? One row per check (check_name, ok, detail), from every ballast.verify__*() function.';
