-- Example application: its funds invalidate cache tags (capability: invalidation, sql/invalidation.sql).
-- A fund's page and API response are cached under 'fund:<id>', its organisation's fund list under
-- 'org:<org_id>:funds', every fund listing under 'funds'. A bulk change of more than 1000 funds enqueues
-- 'fund:' (and 'org::funds' above 1000 organisations) instead of one tag per row.
select ballast.invalidate_on_change('app_public.funds', array['fund:{id}', 'org:{org_id}:funds', 'funds']);
