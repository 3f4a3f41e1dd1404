-- Roles: the owner runs migrations, the authenticator logs in with NOINHERIT and may only switch to
-- the visitor roles, the visitor roles cannot log in, and nobody but superusers bypasses RLS.
begin;
select plan(17);

select has_role('ballast_owner');
select has_role('ballast_authenticator');
select has_role('ballast_anonymous');
select has_role('ballast_member');
select has_role('ballast_admin');

select isnt_superuser('ballast_owner');
select isnt_superuser('ballast_authenticator');
select ok((select rolcanlogin from pg_roles where rolname = 'ballast_authenticator'), 'authenticator can log in');
select ok(not (select rolinherit from pg_roles where rolname = 'ballast_authenticator'), 'authenticator is NOINHERIT');
select ok(not (select bool_or(rolcanlogin) from pg_roles where rolname in ('ballast_anonymous', 'ballast_member', 'ballast_admin')),
          'visitor roles cannot log in');
select is_member_of('ballast_anonymous', 'ballast_authenticator');
select is_member_of('ballast_member', 'ballast_authenticator');
select is_member_of('ballast_admin', 'ballast_authenticator');
select is((select count(*)::int from pg_roles where rolbypassrls and not rolsuper), 0, 'no non-superuser role has BYPASSRLS');
select db_owner_is(current_database(), 'ballast_owner');

-- The visitor roles cannot read the kit's tables directly.
set local role ballast_member;
select throws_ok('select * from ballast.verify_exemptions', '42501', null, 'member cannot read ballast tables');
reset role;
select ok(not has_function_privilege('ballast_anonymous', 'ballast.verify_migration_success()', 'execute'),
          'anonymous cannot run verify_migration_success()');

select * from finish();
rollback;
