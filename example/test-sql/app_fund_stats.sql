-- The example app's fund summary: the owner's refresh sees every organisation's funds (RLS is forced
-- on funds), and app_public.fund_stats shows a visitor only their own organisation's row.
begin;
\ir tests_schema.psql
select plan(7);

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

select * from finish();
rollback;
