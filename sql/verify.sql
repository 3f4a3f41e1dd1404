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
  perform ballast.assert_relation(obj, 'exempt');
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

---- exempt_role
---- Records that a role may keep BYPASSRLS, with a reason: the check "no BYPASSRLS but superusers" then passes for it.
create or replace function ballast.exempt_role(role_name name, reason text)
returns void as $$
begin
  if role_name is null then
    raise exception using errcode = '22004', message = 'exempt_role: role_name must not be null',
      hint = 'Name the role that needs BYPASSRLS, e.g. select ballast.exempt_role(''replicator'', ''logical replication reads every row'').';
  end if;
  if not exists (select 1 from pg_roles r where r.rolname = exempt_role.role_name) then
    raise exception using errcode = '42704',
      message = format('exempt_role: role %I does not exist', role_name),
      hint = 'Exempt an existing role (select rolname from pg_roles where rolbypassrls).';
  end if;
  if role_name in ('ballast_owner', 'ballast_authenticator', 'ballast_anonymous', 'ballast_member', 'ballast_admin') then
    raise exception using errcode = '22023',
      message = format('exempt_role: %I is one of the kit''s roles, which never bypass row level security', role_name),
      hint = format('alter role %I nobypassrls; give the access to a role of its own instead.', role_name);
  end if;
  if reason is null or length(btrim(reason)) < 10 then
    raise exception using errcode = '22023',
      message = format('exempt_role: reason must say why %I needs BYPASSRLS in at least 10 characters, got %L', role_name, reason);
  end if;
  insert into ballast.verify_exemptions (check_name, object_name, reason)
  values ('bypassrls', role_name, btrim(reason))
  on conflict on constraint verify_exemptions_pkey do update set reason = excluded.reason;
end;
$$ language plpgsql volatile;
comment on function ballast.exempt_role(name, text) is
  E'Let a role keep BYPASSRLS: verify_migration_success()''s check "no BYPASSRLS but superusers" passes for it and shows the reason (at least 10 characters). 42704 for a role that does not exist, 22023 for one of the kit''s own roles or a short reason. Stored in ballast.verify_exemptions (check_name bypassrls); delete the row to withdraw it.';

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
  -- roles that bypass RLS: superusers, and the roles exempted with a reason (ballast.exempt_role)
  select 'no BYPASSRLS but superusers', bool_and(e.reason is not null) is not false,
         coalesce(string_agg(case when e.reason is null
                                  then format('%s has BYPASSRLS: alter role %I nobypassrls, or select ballast.exempt_role(%L, ''<why it needs it>'')', r.rolname, r.rolname, r.rolname)
                                  else format('%s exempt: %s', r.rolname, e.reason) end, '; ' order by e.reason is not null, r.rolname), 'none')
  from pg_roles r
  left join ballast.verify_exemptions e on e.check_name = 'bypassrls' and e.object_name = r.rolname
  where r.rolbypassrls and not r.rolsuper
  union all
  -- the roles of yours that act as visitors (setting visitor_roles): the kit role's rights, no more, no RLS
  -- bypass. "More" is membership in a kit role further along anonymous < member < admin < authenticator <
  -- owner (the authenticator may become any visitor role; the owner_all policies let the owner do anything).
  -- Membership, not privileges: policies apply to members whether or not they inherit.
  select format('visitor role %s', v.name),
         r.oid is not null and not r.rolsuper and not r.rolbypassrls and pg_has_role(r.oid, k.oid, 'usage') and higher.names is null,
         case when r.oid is null then format('missing: create role %I nologin; grant %I to %I', v.name, v.kit_role, v.name)
              when r.rolsuper or r.rolbypassrls then format('%s is a superuser or has BYPASSRLS: a visitor must be subject to row level security (alter role %I nosuperuser nobypassrls)', v.name, v.name)
              when not pg_has_role(r.oid, k.oid, 'usage') then format('%s does not have the rights of %s: grant %I to %I%s', v.name, v.kit_role, v.kit_role, v.name,
                                                                     case when pg_has_role(r.oid, k.oid, 'member') then format(' (it is a member: alter role %I inherit)', v.name) else '' end)
              when higher.names is not null then format('%s is also a member of %s: a %s visitor must not get more', v.name, higher.names, v.kit_role)
              else format('has the rights of %s; policies and grants to %s apply to it', v.kit_role, v.kit_role) end
  from jsonb_each_text(ballast.setting('visitor_roles')) v(name, kit_role)
  join pg_roles k on k.rolname = v.kit_role
  left join pg_roles r on r.rolname = v.name
  left join lateral (
    select string_agg(h.rolname, ', ' order by h.rolname) as names
    from pg_roles h
    where r.oid is not null and pg_has_role(r.oid, h.oid, 'member')
      and array_position(array['ballast_anonymous', 'ballast_member', 'ballast_admin', 'ballast_authenticator', 'ballast_owner'], h.rolname::text)
          > array_position(array['ballast_anonymous', 'ballast_member', 'ballast_admin', 'ballast_authenticator', 'ballast_owner'], v.kit_role)) higher on true
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
  E'Foundation checks for verify_migration_success(): pg_cron, roles, BYPASSRLS (superusers and ballast.exempt_role() exemptions only), your visitor roles (setting visitor_roles), RLS on every table, matview unique indexes.';

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
