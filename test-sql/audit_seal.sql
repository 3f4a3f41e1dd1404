-- Audit seals (sql/audit_seal.sql): what can be shown inside one transaction. A transaction never sees its
-- own audit rows sealed (it is still running); sealing of committed rows, tampering and retention need
-- sessions that commit: test/audit_seal.test.ts.
begin;
\ir tests_schema.psql
select plan(14);

select has_table('ballast', 'audit_seals', 'ballast.audit_seals exists');
select ok((select relforcerowsecurity from pg_class where oid = 'ballast.audit_seals'::regclass), 'its row level security is forced');
select is((select count(*)::int from pg_trigger where tgrelid = 'ballast.audit_log'::regclass and tgname = '_910_seal_prune' and tgenabled <> 'D'), 1,
          'the audit log records retention deletes of sealed rows in the chain (_910_seal_prune)');

-- rows of a running transaction are not sealed, whatever their id
create table tests.seal_probe (id int primary key, v int not null default 0);
select ballast.enable_audit('tests.seal_probe');
insert into tests.seal_probe (id) select g from generate_series(1, 5) g;
update tests.seal_probe set v = 1;
select lives_ok('select ballast.seal_audit_log()', 'seal_audit_log() runs inside a transaction');
select is((select count(*)::int from ballast.audit_log l join ballast.audit_seals s on s.kind = 'seal' and l.id = any (s.ids)
            where l.table_name = 'tests.seal_probe'), 0, 'rows of a transaction still running are left for a later seal');
select ok((select coalesce(max(to_txid), 0) <= txid_current() from ballast.audit_seals where kind = 'seal'),
          'no seal reaches the txid of a running transaction');

-- the chain is append-only, for the superuser too
select throws_ok('update ballast.audit_seals set row_count = row_count', '42501', null, 'UPDATE of audit_seals fails');
select throws_ok('delete from ballast.audit_seals', '42501', null, 'DELETE of audit_seals fails');
select throws_ok('truncate ballast.audit_seals', '42501', null, 'TRUNCATE of audit_seals fails');

-- the checks
select is(array(select check_name from ballast.verify_audit_log() order by 1),
          array['audit rows altered', 'audit rows deleted', 'audit rows inserted after sealing', 'audit rows not sealed yet', 'audit seal chain'],
          'verify_audit_log() answers its five checks');
select is(array(select check_name from ballast.verify__audit_seal() order by 1), array['audit seal cron job', 'audit seals link up'],
          'verify_migration_success() gets the cheap checks');
select ok(exists (select from ballast.metrics__audit_seal() where metric = 'ballast_audit_seconds_since_seal'), '/metrics gets the seal age');

-- what the worker reads: a SECURITY DEFINER function, not the table
select ok((select prosecdef from pg_proc where oid = 'ballast.audit_seals_between(timestamptz,timestamptz)'::regprocedure),
          'audit_seals_between is SECURITY DEFINER');
select ok(not has_function_privilege('ballast_member', 'ballast.audit_seals_between(timestamptz,timestamptz)', 'execute'),
          'and visitors may not call it');

select * from finish();
rollback;
