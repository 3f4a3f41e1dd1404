-- ballast's worker's login role (sql/worker.sql, issue 16 item 5): ballast_worker_login may run exactly the
-- kit functions its tasks call and touches no kit table itself; the functions it calls check their input.
-- test/worker.test.ts runs the real worker process as this role.
begin;
select plan(25);

-- the role
select is((select row(rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolbypassrls)::text from pg_roles where rolname = 'ballast_worker_login'),
          row(false, false, false, false, false)::text, 'ballast_worker_login exists: no superuser, NOINHERIT, no CREATEROLE/CREATEDB, no BYPASSRLS');
select is((select count(*)::int from pg_auth_members m join pg_roles r on r.oid = m.member where r.rolname = 'ballast_worker_login'), 0,
          'and it is a member of no role (it has only what is granted to it by name)');

-- what it may run: its tasks' functions, and what PUBLIC may run
select is(
  (select array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text)
     from pg_proc p
    where p.pronamespace = 'ballast'::regnamespace
      and has_function_privilege('ballast_worker_login', p.oid, 'execute')),
  array['ballast.ack_cache_invalidations(bigint[],integer[])',
        'ballast.audit_seals_between(timestamp with time zone,timestamp with time zone)',
        'ballast.drain_cache_invalidation_queue(integer,integer)',
        'ballast.fail_cache_invalidations(bigint[],integer[],text,integer,integer,boolean)',
        'ballast.pending_matview_refreshes()',
        'ballast.recent_matview_refreshes(timestamp with time zone,timestamp with time zone)',
        'ballast.record_refresh_request(regclass)',
        'ballast.record_worker_heartbeat(text,text,integer)',
        'ballast.version()',
        'ballast.worker_schema()'],
  'ballast_worker_login may execute its tasks'' functions and the two PUBLIC ones, no other kit function');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1)
     from pg_proc p
    where p.pronamespace = 'ballast'::regnamespace
      and has_function_privilege('ballast_worker_login', p.oid, 'execute')
      and not p.prosecdef and p.proname not in ('version', 'record_refresh_request')),
  null, 'each of them runs as its definer (the role has no table rights of its own to run them with)');
select is(
  (select array_agg(p.oid::regprocedure::text order by 1)
     from pg_proc p
    where p.pronamespace = 'ballast'::regnamespace and p.prosecdef
      and not exists (select from unnest(p.proconfig) c where c like 'search_path=%')),
  null, 'every SECURITY DEFINER function of the kit pins its search_path');

-- what it may touch directly: no kit table or view, beyond PUBLIC's insert into the trigger inbox
select is(
  (select array_agg(format('%s %s', c.oid::regclass, priv) order by 1)
     from pg_class c
     cross join unnest(array['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger']) priv
    where c.relnamespace = 'ballast'::regnamespace and c.relkind in ('r', 'p', 'v', 'm')
      and has_table_privilege('ballast_worker_login', c.oid, priv)),
  array['ballast.cache_invalidation_inbox insert'],
  'no right on any kit table or view but the inbox insert every role has (triggers run as the writer)');
select ok(not has_schema_privilege('ballast_worker_login', 'ballast', 'create'), 'no CREATE in schema ballast');
select ok(not has_database_privilege('ballast_worker_login', current_database(), 'create'), 'no CREATE on the database');

-- as the role: the audit log is out of reach (pgTAP lives in schema public, which the role may not use:
-- this transaction lets it, to call pgTAP, and rolls that back)
grant usage on schema public to ballast_worker_login;
set local role ballast_worker_login;
select throws_ok($$update ballast.audit_log set table_name = 'forged'$$, '42501', null, 'as ballast_worker_login: update ballast.audit_log is refused (42501)');
select throws_ok($$alter table ballast.audit_log disable trigger all$$, '42501', null, 'as ballast_worker_login: disabling the audit log''s triggers is refused (42501)');
select throws_ok($$select 1 from ballast.cache_invalidation_queue$$, '42501', null, 'as ballast_worker_login: reading the queue directly is refused (42501)');
select throws_ok($$insert into ballast.worker_heartbeats (worker_id, hostname, pid) values ('w', 'h', 1)$$, '42501', null,
                 'as ballast_worker_login: writing heartbeats directly is refused (42501)');
-- and its own functions work
select lives_ok($$select ballast.record_worker_heartbeat('worker-test-1', 'host-a', 4242)$$, 'as ballast_worker_login: record_worker_heartbeat runs');
select lives_ok($$select * from ballast.recent_matview_refreshes(now() - interval '1 minute', now())$$, 'as ballast_worker_login: recent_matview_refreshes runs');
select lives_ok($$select * from ballast.pending_matview_refreshes()$$, 'as ballast_worker_login: pending_matview_refreshes runs');
select lives_ok($$select * from ballast.drain_cache_invalidation_queue(1, 30)$$, 'as ballast_worker_login: drain_cache_invalidation_queue runs');
select is(ballast.worker_schema(), 'ballast_worker'::name, 'as ballast_worker_login: worker_schema() answers');
reset role;

-- record_worker_heartbeat: inserts, then refreshes the same worker's row
select is((select row(hostname, pid)::text from ballast.worker_heartbeats where worker_id = 'worker-test-1'), row('host-a', 4242)::text,
          'record_worker_heartbeat inserts the worker''s row');
select ballast.record_worker_heartbeat('worker-test-1', 'host-b', 4343);
select is((select row(hostname, pid, last_seen_at = now())::text from ballast.worker_heartbeats where worker_id = 'worker-test-1'),
          row('host-b', 4343, true)::text, 'and a second call updates it in place');
select throws_like($$select ballast.record_worker_heartbeat(E'a\nb', 'h', 1)$$,
                   'record_worker_heartbeat: worker_id must be 1 to 200 printable characters, got %', 'a control character in worker_id: 22023, quoting it');
select throws_ok($$select ballast.record_worker_heartbeat('w', 'h', 0)$$, '22023',
                 'record_worker_heartbeat: pid must be a positive process id, got 0', 'a pid of 0: 22023');

-- recent_matview_refreshes: the window (since, until], the view's name, the duration in ms
insert into ballast.mv_refresh_log (matview, started_at, finished_at, mode, ok, error, requests) values
  ('ballast.settings'::regclass, now() - interval '70 seconds', now() - interval '65 seconds', 'plain', true, null, 1),
  ('ballast.settings'::regclass, now() - interval '3 seconds', now() - interval '1.5 seconds', 'concurrent', false, '55000: no unique index', 2);
select results_eq(
  $$select matview, mode, ok, error, requests, ms from ballast.recent_matview_refreshes(now() - interval '1 minute', now()) where matview = 'ballast.settings'$$,
  $$values ('ballast.settings'::text, 'concurrent'::text, false, '55000: no unique index'::text, 2, 1500)$$,
  'recent_matview_refreshes: the refreshes that finished in the window, named, with their duration in ms');
select throws_ok($$select * from ballast.recent_matview_refreshes(now(), now() - interval '1 minute')$$, '22023', null, 'since after until: 22023');
select throws_ok($$select * from ballast.recent_matview_refreshes(now() - interval '2 days', now())$$, '22023', null, 'a window over a day: 22023');
select throws_like($$select * from ballast.recent_matview_refreshes(null, now())$$,
                   'recent_matview_refreshes: since and until must be finite times with since < until at most 1 day apart, got null and %',
                   'a null since: 22023, naming both');

select * from finish();
rollback;
