-- verify_migration_success(): reports every check, and turns not ok for a bad materialized view, a
-- table without forced RLS and a BYPASSRLS role; exemptions need a reason.
begin;
select plan(22);

select ok((select bool_and(ok) from ballast.verify_migration_success()), 'a freshly migrated database passes every check');
select ok((select count(*) from ballast.verify_migration_success()) >= 10, 'verify returns one row per check');

-- A materialized view without a unique index is reported, with the reason.
create materialized view public.bad_mv as select g as n from generate_series(1, 3) g;
select is((select ok from ballast.verify_migration_success() where check_name = 'matview public.bad_mv'), false,
          'a matview without a unique index is not ok');
select matches((select detail from ballast.verify_migration_success() where check_name = 'matview public.bad_mv'),
               '^no unique index', 'the detail says there is no unique index');
create unique index bad_mv_partial on public.bad_mv (n) where n > 1;
select matches((select reason from ballast.check_matview_unique_indexes() where matview = 'public.bad_mv'::regclass),
               'partial', 'a partial unique index is named as the reason');
create unique index bad_mv_expr on public.bad_mv ((n * 2));
select matches((select reason from ballast.check_matview_unique_indexes() where matview = 'public.bad_mv'::regclass),
               'on expressions', 'an expression index is named as the reason');
create unique index bad_mv_n on public.bad_mv (n);
select is((select ok from ballast.verify_migration_success() where check_name = 'matview public.bad_mv'), true,
          'a plain unique index makes it ok');

create materialized view public.unpopulated_mv as select 1 as n with no data;
create unique index on public.unpopulated_mv (n);
select is((select reason from ballast.check_matview_unique_indexes() where matview = 'public.unpopulated_mv'::regclass),
          'not populated: the first refresh must be a plain REFRESH MATERIALIZED VIEW', 'an unpopulated view says so');

-- A table in a schema named by the verify_schemas setting without forced RLS is reported; an exemption
-- with a reason makes it ok.
create schema verify_tap;
select ballast.configure('verify_schemas', ballast.setting('verify_schemas') || '["verify_tap"]');
create table verify_tap.no_rls (id int primary key);
select is((select ok from ballast.verify_migration_success() where check_name = 'rls verify_tap.no_rls'), false,
          'a table without RLS is not ok');
alter table verify_tap.no_rls enable row level security;
select is((select ok from ballast.verify_migration_success() where check_name = 'rls verify_tap.no_rls'), false,
          'enabled but not forced is still not ok');
select throws_ok($$select ballast.exempt('rls', 'verify_tap.no_rls', 'meh')$$, '22023', null,
                 'an exemption needs a real reason');
select ballast.exempt('rls', 'verify_tap.no_rls', 'holds only public reference data, read by everyone');
select is((select ok from ballast.verify_migration_success() where check_name = 'rls verify_tap.no_rls'), true,
          'an exempt table is ok');
select throws_ok($$select ballast.exempt('nonsense', 'verify_tap.no_rls', 'a long enough reason')$$, '22023', null,
                 'an unknown check is refused');

-- A role with BYPASSRLS turns the check red, unless it is exempted with a reason (ballast.exempt_role).
create role ballast_test_bypass nologin bypassrls;
select is((select ok from ballast.verify_migration_success() where check_name = 'no BYPASSRLS but superusers'), false,
          'a BYPASSRLS role is reported');
select matches((select detail from ballast.verify_migration_success() where check_name = 'no BYPASSRLS but superusers'),
               'ballast_test_bypass has BYPASSRLS: .*ballast\.exempt_role', 'the detail names the role and the way out');
select throws_ok($$select ballast.exempt_role('ballast_test_no_such_role', 'reads every row to replicate it')$$, '42704',
                 'exempt_role: role ballast_test_no_such_role does not exist', 'exempt_role: an unknown role is refused, named');
select throws_ok($$select ballast.exempt_role('ballast_test_bypass', 'because')$$, '22023',
                 'exempt_role: reason must say why ballast_test_bypass needs BYPASSRLS in at least 10 characters, got ''because''',
                 'exempt_role: a short reason is refused');
select throws_ok($$select ballast.exempt_role('ballast_member', 'members may see everything')$$, '22023',
                 'exempt_role: ballast_member is one of the kit''s roles, which never bypass row level security', 'exempt_role: the kit''s roles cannot be exempted');
select throws_ok($$select ballast.exempt_role(null, 'a long enough reason')$$, '22004', null, 'exempt_role: a null role is refused');
select is((select count(*)::int from ballast.verify_exemptions where check_name = 'bypassrls'), 0, 'refused calls leave no exemption behind');
select ballast.exempt_role('ballast_test_bypass', 'logical replication reads every row of every table');
select is((select ok from ballast.verify_migration_success() where check_name = 'no BYPASSRLS but superusers'), true,
          'an exempt BYPASSRLS role passes the check');
select matches((select detail from ballast.verify_migration_success() where check_name = 'no BYPASSRLS but superusers'),
               'ballast_test_bypass exempt: logical replication reads every row of every table', 'the detail shows the reason');

select * from finish();
rollback;
