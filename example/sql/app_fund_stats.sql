-- Example app: app_private.fund_stats (created by its migration) is kept fresh by the refresh queue.
-- Writes to app_public.funds queue a request; the view is refreshed 30 s after writes stop, and at the
-- latest 5 minutes after the first unrefreshed write.
select ballast.register_matview('app_private.fund_stats', array['app_public.funds']::regclass[],
                                debounce => '30 seconds', max_delay => '5 minutes');

-- REFRESH runs the view's query as its owner, and RLS is forced on funds: the owner may read every fund
-- (it computes every organisation's summary; no visitor role can act as the owner).
drop policy if exists funds_owner_read on app_public.funds;
create policy funds_owner_read on app_public.funds for select to ballast_owner using (true);

-- A materialized view has no RLS, so visitors never read it directly: this function returns only the
-- current organisation's row, and only to a member of it.
---- current_org_fund_stats
---- The fund summary of the organisation the caller acts for, if they are a member of it.
create or replace function app_private.current_org_fund_stats()
returns setof app_private.fund_stats as $$
  select s.* from app_private.fund_stats s
  where s.org_id = (select ballast.current_org_id()) and (select app_private.current_member_role()) is not null
$$ language sql stable security definer set search_path = pg_catalog, pg_temp;
comment on function app_private.current_org_fund_stats() is
  E'Safe as SECURITY DEFINER: returns only the row of the organisation in the caller''s claims, and only when the caller is a member of it.';
grant execute on function app_private.current_org_fund_stats() to ballast_member, ballast_admin;

drop view if exists app_public.fund_stats;
create view app_public.fund_stats with (security_invoker = true) as
  select * from app_private.current_org_fund_stats();
comment on view app_public.fund_stats is
  E'Your organisation''s fund summary (fund count, committed capital, average IRR, last change), refreshed by the refresh queue.';
grant select on app_public.fund_stats to ballast_member, ballast_admin;
