-- Example application: changes to app_public.funds enqueue the fund's, its organisation's and the
-- listing's cache tags.
begin;
select plan(4);

select is((select ok from ballast.verify_migration_success() where check_name = 'invalidate_on_change app_public.funds'), true,
          'app_public.funds is registered and its triggers are in place');
delete from ballast.cache_invalidation_inbox;
insert into app_public.organizations (id, name) values ('00000000-0000-0000-0000-00000000000a', 'Org A'),
                                                      ('00000000-0000-0000-0000-00000000000b', 'Org B');
insert into app_public.funds (org_id, name) values ('00000000-0000-0000-0000-00000000000a', 'Fund 1');
select is((select array_agg(distinct t order by t) from ballast.cache_invalidation_inbox, unnest(tags) t),
          array['fund:' || (select id from app_public.funds where name = 'Fund 1'), 'funds',
                'org:00000000-0000-0000-0000-00000000000a:funds'], 'a new fund: its tag, its organisation''s, the listing');
delete from ballast.cache_invalidation_inbox;
update app_public.funds set org_id = '00000000-0000-0000-0000-00000000000b' where name = 'Fund 1';
select is((select array_agg(distinct t order by t) from ballast.cache_invalidation_inbox, unnest(tags) t),
          array['fund:' || (select id from app_public.funds where name = 'Fund 1'), 'funds',
                'org:00000000-0000-0000-0000-00000000000a:funds', 'org:00000000-0000-0000-0000-00000000000b:funds'],
          'a fund moving to another organisation invalidates both lists');
delete from ballast.cache_invalidation_inbox;
insert into app_public.funds (org_id, name)
select '00000000-0000-0000-0000-00000000000a', 'bulk ' || g from generate_series(1, 1500) g;
select is((select array_agg(distinct t order by t) from ballast.cache_invalidation_inbox, unnest(tags) t),
          array['fund:', 'funds', 'org:00000000-0000-0000-0000-00000000000a:funds'],
          'a bulk insert of 1500 funds collapses the fund tags');

select * from finish();
rollback;
