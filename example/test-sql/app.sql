-- The example app's access rules as a table-driven RLS matrix: every table in app_public/app_private ×
-- {anonymous, member of org A, admin of org A, member of org B, malformed claims, forged role claim} ×
-- {select, insert, update, delete}, each against a row of org A and a row of org B (and, for users, the
-- visitor's own row). Expected outcomes are data:
--   allowed  the statement saw / changed the row
--   hidden   no error, but RLS hid the row (0 rows)
--   denied   42501: no privilege, or a policy's WITH CHECK refused the new row
-- Plus our own assertion (pgTAP has none) that every table in the app schemas and ballast has RLS
-- enabled and forced.
begin;
\ir app_tests_schema.psql

-- Fixtures: two organisations, each with a member, an admin and a peer; a user in no organisation.
select tests.create_org('org A'), tests.create_org('org B');
select tests.create_user(u) from unnest(array['member A', 'admin A', 'peer A', 'member B', 'admin B', 'peer B', 'outsider']) u;
select tests.add_member('org A', 'member A', 'member'), tests.add_member('org A', 'admin A', 'admin'), tests.add_member('org A', 'peer A', 'member'),
       tests.add_member('org B', 'member B', 'member'), tests.add_member('org B', 'admin B', 'admin'), tests.add_member('org B', 'peer B', 'member');
insert into app_public.funds (org_id, name, size) values (tests.id('org A'), 'Fund A', 100), (tests.id('org B'), 'Fund B', 200);

-- The personas: how each one acts (the API's role and claims).
create function tests.act_as(persona text) returns void as $$
begin
  case persona
    when 'anonymous' then perform tests.authenticate_as_anonymous();
    when 'member of A' then perform tests.authenticate_as('member A', 'org A');
    when 'admin of A' then perform tests.authenticate_as('admin A', 'org A');
    when 'member of B' then perform tests.authenticate_as('member B', 'org B');
    -- admin A's claims, cut short: must not half-parse into admin rights; acts as ballast_admin (most grants)
    when 'malformed claims' then perform tests.authenticate_with_claims(left(tests.claims_for('admin A', 'org A'), -2), 'ballast_admin');
    -- member A with a token that claims admin: the API gives it ballast_admin; memberships says member
    when 'forged role claim' then perform tests.authenticate_as('member A', 'org A', 'admin');
    else raise exception 'unknown persona %', persona;
  end case;
end $$ language plpgsql;
-- whose row is "self" for each persona (users table)
create function tests.self_of(persona text) returns text as $$
  select case persona when 'admin of A' then 'admin A' when 'member of B' then 'member B' else 'member A' end
$$ language sql immutable;

-- The statement for (table, command, target), targets: A = a row of org A that is not the visitor's own,
-- B = a row of org B, self = the visitor's own user row, new = a fresh row for insert.
create function tests.matrix_sql(tbl text, cmd text, target text, persona text) returns text as $$
  select case tbl
    when 'app_public.organizations' then case cmd
      when 'select' then format('select 1 from app_public.organizations where id = %L', tests.id('org ' || target))
      when 'insert' then 'insert into app_public.organizations (name) values (''new org'')'
      when 'update' then format('update app_public.organizations set name = name || ''!'' where id = %L', tests.id('org ' || target))
      when 'delete' then format('delete from app_public.organizations where id = %L', tests.id('org ' || target)) end
    when 'app_public.users' then case cmd
      when 'insert' then 'insert into app_public.users (email, name) values (''new@example.test'', ''new'')'
      else format(case cmd when 'select' then 'select 1 from app_public.users where id = %L'
                           when 'update' then 'update app_public.users set name = name || ''!'' where id = %L'
                           when 'delete' then 'delete from app_public.users where id = %L' end,
                  tests.id(case target when 'self' then tests.self_of(persona) else 'peer ' || target end)) end
    when 'app_public.memberships' then case cmd
      when 'select' then format('select 1 from app_public.memberships where org_id = %L and user_id = %L', tests.id('org ' || target), tests.id('peer ' || target))
      when 'insert' then format('insert into app_public.memberships (org_id, user_id) values (%L, %L)', tests.id('org ' || target), tests.id('outsider'))
      when 'update' then format('update app_public.memberships set role = ''admin'' where org_id = %L and user_id = %L', tests.id('org ' || target), tests.id('peer ' || target))
      when 'delete' then format('delete from app_public.memberships where org_id = %L and user_id = %L', tests.id('org ' || target), tests.id('peer ' || target)) end
    when 'app_public.funds' then case cmd
      when 'select' then format('select 1 from app_public.funds where org_id = %L', tests.id('org ' || target))
      when 'insert' then format('insert into app_public.funds (org_id, name) values (%L, ''new fund'')', tests.id('org ' || target))
      when 'update' then format('update app_public.funds set size = size + 1 where org_id = %L', tests.id('org ' || target))
      when 'delete' then format('delete from app_public.funds where org_id = %L', tests.id('org ' || target)) end
    -- platform tables (example/sql/app_admin.sql): no organisation, so one target, all rows
    when 'app_private.operators' then case cmd
      when 'select' then 'select 1 from app_private.operators'
      when 'insert' then format('insert into app_private.operators (user_id) values (%L)', tests.id(tests.self_of(persona)))
      when 'update' then 'update app_private.operators set added_at = now()'
      when 'delete' then 'delete from app_private.operators' end
    when 'app_private.operations_health_cache' then case cmd
      when 'select' then 'select 1 from app_private.operations_health_cache'
      when 'insert' then 'insert into app_private.operations_health_cache (snapshot, taken_at) values (''{}'', now())'
      when 'update' then 'update app_private.operations_health_cache set taken_at = now()'
      when 'delete' then 'delete from app_private.operations_health_cache' end
  end
$$ language sql stable;

-- THE MATRIX. One line per (table, command, target); one column per persona.
create table tests.rls_matrix (tbl text, cmd text, target text,
  anonymous text, member_a text, admin_a text, member_b text, malformed text, forged text);
insert into tests.rls_matrix values
-- table                     cmd       target  anonymous member A   admin A    member B   malformed  forged role
  ('app_public.organizations', 'select', 'A',  'denied', 'allowed', 'allowed', 'hidden',  'hidden',  'allowed'),
  ('app_public.organizations', 'select', 'B',  'denied', 'hidden',  'hidden',  'allowed', 'hidden',  'hidden'),
  ('app_public.organizations', 'insert', 'new','denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_public.organizations', 'update', 'A',  'denied', 'denied',  'allowed', 'denied',  'hidden',  'hidden'),
  ('app_public.organizations', 'update', 'B',  'denied', 'denied',  'hidden',  'denied',  'hidden',  'hidden'),
  ('app_public.organizations', 'delete', 'A',  'denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_public.organizations', 'delete', 'B',  'denied', 'denied',  'denied',  'denied',  'denied',  'denied'),

  ('app_public.users',         'select', 'A',  'denied', 'allowed', 'allowed', 'hidden',  'hidden',  'allowed'),
  ('app_public.users',         'select', 'B',  'denied', 'hidden',  'hidden',  'allowed', 'hidden',  'hidden'),
  ('app_public.users',         'select', 'self','denied','allowed', 'allowed', 'allowed', 'hidden',  'allowed'),
  ('app_public.users',         'insert', 'new','denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_public.users',         'update', 'A',  'denied', 'hidden',  'hidden',  'hidden',  'hidden',  'hidden'),
  ('app_public.users',         'update', 'B',  'denied', 'hidden',  'hidden',  'hidden',  'hidden',  'hidden'),
  ('app_public.users',         'update', 'self','denied','allowed', 'allowed', 'allowed', 'hidden',  'allowed'),
  ('app_public.users',         'delete', 'A',  'denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_public.users',         'delete', 'B',  'denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_public.users',         'delete', 'self','denied','denied',  'denied',  'denied',  'denied',  'denied'),

  ('app_public.memberships',   'select', 'A',  'denied', 'allowed', 'allowed', 'hidden',  'hidden',  'allowed'),
  ('app_public.memberships',   'select', 'B',  'denied', 'hidden',  'hidden',  'allowed', 'hidden',  'hidden'),
  ('app_public.memberships',   'insert', 'A',  'denied', 'denied',  'allowed', 'denied',  'denied',  'denied'),
  ('app_public.memberships',   'insert', 'B',  'denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_public.memberships',   'update', 'A',  'denied', 'denied',  'allowed', 'denied',  'hidden',  'hidden'),
  ('app_public.memberships',   'update', 'B',  'denied', 'denied',  'hidden',  'denied',  'hidden',  'hidden'),
  ('app_public.memberships',   'delete', 'A',  'denied', 'denied',  'allowed', 'denied',  'hidden',  'hidden'),
  ('app_public.memberships',   'delete', 'B',  'denied', 'denied',  'hidden',  'denied',  'hidden',  'hidden'),

  ('app_public.funds',         'select', 'A',  'denied', 'allowed', 'allowed', 'hidden',  'hidden',  'allowed'),
  ('app_public.funds',         'select', 'B',  'denied', 'hidden',  'hidden',  'allowed', 'hidden',  'hidden'),
  ('app_public.funds',         'insert', 'A',  'denied', 'denied',  'allowed', 'denied',  'denied',  'denied'),
  ('app_public.funds',         'insert', 'B',  'denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_public.funds',         'update', 'A',  'denied', 'denied',  'allowed', 'denied',  'hidden',  'hidden'),
  ('app_public.funds',         'update', 'B',  'denied', 'denied',  'hidden',  'denied',  'hidden',  'hidden'),
  ('app_public.funds',         'delete', 'A',  'denied', 'denied',  'allowed', 'denied',  'hidden',  'hidden'),
  ('app_public.funds',         'delete', 'B',  'denied', 'denied',  'hidden',  'denied',  'hidden',  'hidden'),

  -- platform data: only the owner (app_public.operations_health() reads them as the owner)
  ('app_private.operators',    'select', 'all','denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_private.operators',    'insert', 'new','denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_private.operators',    'update', 'all','denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_private.operators',    'delete', 'all','denied', 'denied',  'denied',  'denied',  'denied',  'denied'),
  ('app_private.operations_health_cache', 'select', 'all', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('app_private.operations_health_cache', 'insert', 'new', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('app_private.operations_health_cache', 'update', 'all', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('app_private.operations_health_cache', 'delete', 'all', 'denied', 'denied', 'denied', 'denied', 'denied', 'denied');

create view tests.rls_expected as
  select m.tbl, m.cmd, m.target, p.persona, p.expected
    from tests.rls_matrix m
    cross join lateral (values ('anonymous', m.anonymous), ('member of A', m.member_a), ('admin of A', m.admin_a),
                               ('member of B', m.member_b), ('malformed claims', m.malformed), ('forged role claim', m.forged)) p(persona, expected);

-- Runs every cell as its persona (each statement undone by tests.try_sql) and returns what happened.
create function tests.rls_results() returns table (tbl text, cmd text, target text, persona text, expected text, actual text) as $$
declare
  cells tests.rls_expected[] := array(select e from tests.rls_expected e);
  c tests.rls_expected;
  sql text;
begin
  foreach c in array cells loop
    sql := tests.matrix_sql(c.tbl, c.cmd, c.target, c.persona);  -- as the superuser: tests.id() lookups
    perform tests.act_as(c.persona);
    actual := tests.try_sql(sql);
    perform tests.clear_authentication();
    tbl := c.tbl; cmd := c.cmd; target := c.target; persona := c.persona; expected := c.expected;
    return next;
  end loop;
end $$ language plpgsql;
create table tests.rls_actual as select * from tests.rls_results();

select plan((select count(*)::int from tests.rls_actual) + 8);

-- The matrix covers every table of the app schemas, every command and every persona.
select is((select string_agg(ballast.qualified_name(c.oid), ', ' order by 1) from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where c.relkind in ('r', 'p') and n.nspname in ('app_public', 'app_private')
              and ballast.qualified_name(c.oid) not in (select tbl from tests.rls_matrix)),
          null, 'every table in app_public and app_private has rows in the RLS matrix');
select is((select string_agg(tbl, ', ') from (select tbl from tests.rls_matrix group by tbl having count(distinct cmd) <> 4) t),
          null, 'every table is tried with select, insert, update and delete');
select is((select count(distinct persona)::int from tests.rls_actual), 6, 'six personas');

-- One test per cell.
select is(actual, expected, format('%s: %s %s (target %s)', persona, cmd, tbl, target))
  from tests.rls_actual order by tbl, cmd, target, persona;

-- 0 leaks: nothing seen or changed that the matrix says is hidden or denied.
select is((select count(*)::int from tests.rls_actual where actual = 'allowed' and expected <> 'allowed'), 0,
          '0 leaks: no persona saw or changed a row the matrix hides or denies');

-- Reads without a WHERE see exactly the persona's organisation.
create function tests.visible_orgs(persona text) returns text as $$
declare
  r text;
begin
  perform tests.act_as(persona);
  select string_agg(distinct o.name, ', ') into r from app_public.funds f join app_public.organizations o on o.id = f.org_id;
  perform tests.clear_authentication();
  return r;
end $$ language plpgsql;
select is(tests.visible_orgs('member of A') || ' | ' || tests.visible_orgs('member of B') || ' | ' || tests.visible_orgs('forged role claim'),
          'org A | org B | org A', 'an unfiltered funds listing shows only the persona''s organisation');

-- Our own assertion: RLS enabled and forced on every table of the app schemas and ballast.
create function tests.tables_without_forced_rls(schemas text[]) returns setof text as $$
  select format('%s (enabled=%s forced=%s)', ballast.qualified_name(c.oid), c.relrowsecurity, c.relforcerowsecurity)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where c.relkind in ('r', 'p') and n.nspname = any (schemas) and not (c.relrowsecurity and c.relforcerowsecurity)
   order by 1
$$ language sql;
create function tests.rls_is_forced_everywhere(schemas text[]) returns text as $$
  select ok(count(*) = 0, format('RLS is enabled and forced on every table in %s', array_to_string(schemas, ', ')))
         || coalesce(E'\n' || diag('not forced: ' || string_agg(t, ', ')), '')
    from tests.tables_without_forced_rls(schemas) t
$$ language sql;
select tests.rls_is_forced_everywhere(array['app_public', 'app_private', 'ballast']);
-- ... and it can fail: a table with RLS enabled but not forced is caught.
create table app_private.rls_probe (id int primary key);
alter table app_private.rls_probe enable row level security;
select is(array(select tests.tables_without_forced_rls(array['app_private'])), array['app_private.rls_probe (enabled=t forced=f)'],
          'a table whose RLS is enabled but not forced is caught');
drop table app_private.rls_probe;

-- verify_migration_success() checks the example's schemas too (ballast.configure in sql/app.sql).
select is(ballast.verify_schemas(), array['ballast', 'app_public', 'app_private']::name[],
          'verify_migration_success checks ballast, app_public and app_private for RLS and policies');

select * from finish();
rollback;
