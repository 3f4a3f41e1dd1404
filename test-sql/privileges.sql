-- privileges: no kit function is executable by PUBLIC but the two meant for everyone (sql/privileges.sql).
begin;
select plan(3);

select is(
  (select coalesce(array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text), '{}')
     from pg_proc p
    where p.pronamespace = 'ballast'::regnamespace -- functions and procedures
      and has_function_privilege('public', p.oid, 'execute')),
  array['ballast.record_refresh_request(regclass)', 'ballast.version()'],
  'only version() and record_refresh_request() are executable by PUBLIC');

-- a role the kit knows nothing of can ask the version, and nothing else
create role ballast_privileges_probe nologin;
select ok(has_function_privilege('ballast_privileges_probe', 'ballast.version()', 'execute'), 'any role may call ballast.version()');
select ok(not has_function_privilege('ballast_privileges_probe', 'ballast.verify_migration_success()', 'execute'),
          'a stranger cannot run verify_migration_success()');

select * from finish();
rollback;
