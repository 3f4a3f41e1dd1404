-- The example app's fund summary: the owner's refresh sees every organisation's funds (RLS is forced
-- on funds), and app_public.fund_stats shows a visitor only their own organisation's row.
begin;
\ir app_tests_schema.psql
select plan(9);

select tests.create_org('org A'), tests.create_org('org B');
select tests.create_user(u) from unnest(array['member A', 'member B', 'outsider']) u;
select tests.add_member('org A', 'member A'), tests.add_member('org B', 'member B');
insert into app_public.funds (org_id, name, size) values
  (tests.id('org A'), 'A1', 100), (tests.id('org A'), 'A2', 50), (tests.id('org B'), 'B1', 200);

set local role ballast_owner;
refresh materialized view app_private.fund_stats;
reset role;
select is((select fund_count from app_private.fund_stats where org_id = tests.id('org A')), 2,
          'the owner''s refresh counts every fund of org A despite forced RLS');
select is((select total_size from app_private.fund_stats where org_id = tests.id('org B')), 200.00::numeric,
          'and org B''s');

select tests.authenticate_as('member A', 'org A');
select results_eq('select org_id, fund_count from app_public.fund_stats',
                  format('values (%L::uuid, 2)', tests.id('org A')), 'a member of org A sees org A''s summary only');
select tests.authenticate_as('member B', 'org B');
select results_eq('select fund_count from app_public.fund_stats', 'values (1)', 'a member of org B sees org B''s summary only');
select tests.authenticate_as('outsider', 'org A');
select is_empty('select * from app_public.fund_stats', 'claims for an organisation the user is not a member of show nothing');
select tests.authenticate_as('member A', 'org A');
select throws_ok('select * from app_private.fund_stats', '42501', null, 'visitors cannot read the materialized view itself');
select tests.authenticate_as_anonymous();
select throws_ok('select * from app_public.fund_stats', '42501', null, 'anonymous cannot read the summary');
select tests.clear_authentication();

-- The registration (sql/app_fund_stats.sql): the view's trigger is on app_public.funds, and deleting an
-- organisation, which cascades to its funds, requests a refresh.
select ok((select ok from ballast.verify__refresh_queue() where check_name = 'refresh_queue triggers app_private.fund_stats'),
          'app_private.fund_stats is registered with its trigger on app_public.funds');
select tests.create_org('org C');
insert into app_public.funds (org_id, name, size) values (tests.id('org C'), 'C1', 1);
select setval((select request_flag from ballast.registered_matviews where matview = 'app_private.fund_stats'::regclass), 0);
delete from ballast.materialized_view_refresh_queue where matview = 'app_private.fund_stats'::regclass;
delete from app_public.organizations where id = tests.id('org C');
select is((select count(*)::int from ballast.materialized_view_refresh_queue where matview = 'app_private.fund_stats'::regclass), 1,
          'a delete cascading from organizations to funds requests a refresh');

select * from finish();
rollback;
