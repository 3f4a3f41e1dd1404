-- verify_migration_success(): reports every check, and turns not ok for a bad materialized view, a
-- table without forced RLS and a BYPASSRLS role; exemptions need a reason.
begin;
select plan(14);

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

-- A table in an app schema without forced RLS is reported; an exemption with a reason makes it ok.
create table app_private.no_rls (id int primary key);
select is((select ok from ballast.verify_migration_success() where check_name = 'rls app_private.no_rls'), false,
          'a table without RLS is not ok');
alter table app_private.no_rls enable row level security;
select is((select ok from ballast.verify_migration_success() where check_name = 'rls app_private.no_rls'), false,
          'enabled but not forced is still not ok');
select throws_ok($$select ballast.exempt('rls', 'app_private.no_rls', 'meh')$$, '22023', null,
                 'an exemption needs a real reason');
select ballast.exempt('rls', 'app_private.no_rls', 'holds only public reference data, read by everyone');
select is((select ok from ballast.verify_migration_success() where check_name = 'rls app_private.no_rls'), true,
          'an exempt table is ok');
select throws_ok($$select ballast.exempt('nonsense', 'app_private.no_rls', 'a long enough reason')$$, '22023', null,
                 'an unknown check is refused');

-- A role with BYPASSRLS turns the check red.
create role ballast_test_bypass nologin bypassrls;
select is((select ok from ballast.verify_migration_success() where check_name = 'no BYPASSRLS but superusers'), false,
          'a BYPASSRLS role is reported');

select * from finish();
rollback;
