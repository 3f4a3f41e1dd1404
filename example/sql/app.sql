-- The example application's access rules (capability: access): grants and RLS policies on
-- app_public.organizations, users, memberships and funds, and its audit wiring.
--
-- Three layers, each of which alone would deny: GRANTs per database role (anonymous gets nothing), RLS
-- policies per organisation, and admin rights that need BOTH the token's role claim 'admin' AND an
-- admin row in app_public.memberships (a token that claims admin for a mere member gets nothing extra).
-- Claim helpers are wrapped as (select ...) so each runs once per statement, not once per row.

-- verify_migration_success() checks the example's schemas too (RLS and policies on every table), and
-- wants a reason for every SECURITY DEFINER function PostGraphile exposes.
select ballast.configure('verify_schemas', '["app_public", "app_private"]');
select ballast.configure('exposed_schemas', '["app_public"]');

---- current_member_role
---- The session user's role in the organisation the session acts for, from memberships; null if none.
-- plpgsql, not sql: a SQL function with SET is planned again in every statement that calls it (~60 µs);
-- plpgsql keeps its plan for the session.
create or replace function app_private.current_member_role()
returns text as $$
declare
  r text;
begin
  -- the kit's helpers, not the claims' keys: the org claim's name is a setting, and a subject that is
  -- not a uuid (no user of this app) is a null user id instead of an error
  select m.role into r from app_public.memberships m
   where m.org_id = ballast.current_org_id() and m.user_id = ballast.current_user_id();
  return r;
end;
$$ language plpgsql stable security definer set search_path = pg_catalog, pg_temp;
comment on function app_private.current_member_role() is
  E'The session user''s role (member, admin) in the session''s organisation per app_public.memberships; null when not a member or no session. SECURITY DEFINER so policies on memberships can use it without recursion; it reveals only the caller''s own membership.';

---- is_current_org_admin
---- True when the token claims admin AND memberships says the user is an admin of the session's org.
create or replace function app_private.is_current_org_admin()
returns boolean as $$
  select coalesce(ballast.current_app_role() = 'admin' and app_private.current_member_role() = 'admin', false)
$$ language sql stable;
comment on function app_private.is_current_org_admin() is
  E'Admin rights in the session''s organisation: the role claim is admin and app_public.memberships agrees.';

grant usage on schema app_private to ballast_member, ballast_admin;
grant execute on function app_private.current_member_role(), app_private.is_current_org_admin() to ballast_member, ballast_admin;

-- Every table: the owner (migrations, worker, pg_cron) may do everything; visitors per the policies below.
select ballast.owner_only_policy('app_public.organizations');
select ballast.owner_only_policy('app_public.users');
select ballast.owner_only_policy('app_public.memberships');
select ballast.owner_only_policy('app_public.funds');

-- Grants: start from nothing, so removing a line here removes the privilege on the next apply.
revoke all on app_public.organizations, app_public.users, app_public.memberships, app_public.funds
  from ballast_anonymous, ballast_member, ballast_admin;
grant select on app_public.organizations, app_public.users, app_public.memberships, app_public.funds
  to ballast_member, ballast_admin;
grant update (name) on app_public.users to ballast_member, ballast_admin;
grant update (name) on app_public.organizations to ballast_admin;
grant insert (org_id, user_id, role), update (role), delete on app_public.memberships to ballast_admin;
grant insert (org_id, name, size, irr), update (name, size, irr), delete on app_public.funds to ballast_admin;

-- organizations: members see the organisation they act for; its admins may rename it.
drop policy if exists organizations_select on app_public.organizations;
create policy organizations_select on app_public.organizations for select to ballast_member, ballast_admin
  using (id = (select ballast.current_org_id()) and (select app_private.current_member_role()) is not null);
drop policy if exists organizations_update_admin on app_public.organizations;
create policy organizations_update_admin on app_public.organizations for update to ballast_admin
  using (id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()))
  with check (id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()));

-- users: yourself, and the members of the organisation you act for; you may rename yourself.
drop policy if exists users_select on app_public.users;
create policy users_select on app_public.users for select to ballast_member, ballast_admin
  using (id = (select ballast.current_user_id())
         or exists (select 1 from app_public.memberships m   -- RLS on memberships limits this to your org
                     where m.user_id = users.id and m.org_id = (select ballast.current_org_id())));
drop policy if exists users_update_self on app_public.users;
create policy users_update_self on app_public.users for update to ballast_member, ballast_admin
  using (id = (select ballast.current_user_id()))
  with check (id = (select ballast.current_user_id()));

-- memberships and funds: members of the organisation read them; its admins write them.
drop policy if exists memberships_select on app_public.memberships;
create policy memberships_select on app_public.memberships for select to ballast_member, ballast_admin
  using (org_id = (select ballast.current_org_id()) and (select app_private.current_member_role()) is not null);
drop policy if exists memberships_insert_admin on app_public.memberships;
create policy memberships_insert_admin on app_public.memberships for insert to ballast_admin
  with check (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()));
drop policy if exists memberships_update_admin on app_public.memberships;
create policy memberships_update_admin on app_public.memberships for update to ballast_admin
  using (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()))
  with check (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()));
drop policy if exists memberships_delete_admin on app_public.memberships;
create policy memberships_delete_admin on app_public.memberships for delete to ballast_admin
  using (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()));

drop policy if exists funds_select on app_public.funds;
create policy funds_select on app_public.funds for select to ballast_member, ballast_admin
  using (org_id = (select ballast.current_org_id()) and (select app_private.current_member_role()) is not null);
drop policy if exists funds_insert_admin on app_public.funds;
create policy funds_insert_admin on app_public.funds for insert to ballast_admin
  with check (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()));
drop policy if exists funds_update_admin on app_public.funds;
create policy funds_update_admin on app_public.funds for update to ballast_admin
  using (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()))
  with check (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()));
drop policy if exists funds_delete_admin on app_public.funds;
create policy funds_delete_admin on app_public.funds for delete to ballast_admin
  using (org_id = (select ballast.current_org_id()) and (select app_private.is_current_org_admin()));

-- The audit log: who changed funds and memberships. An org admin reads their org's rows through
-- ballast.admin_audit_log; the kit shows them to no visitor until the app says who its admins are: its
-- rule, the setting audit_admin_rule, makes "admin" mean what it means here (memberships).
select ballast.enable_audit('app_public.funds');
select ballast.enable_audit('app_public.memberships');
select ballast.configure('audit_admin_rule', '"app_private.is_current_org_admin"');
-- Before the setting existed, this app tied "admin" to memberships with a restrictive policy of its own
-- on ballast.audit_log; the rule replaces it. Dropped only when present: a drop on ballast.audit_log
-- takes ACCESS EXCLUSIVE on a busy table.
do $$
begin
  if exists (select from pg_policies where schemaname = 'ballast' and tablename = 'audit_log'
             and policyname = 'audit_log_app_admin_membership') then
    drop policy audit_log_app_admin_membership on ballast.audit_log;
  end if;
end $$;
