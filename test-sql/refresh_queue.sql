-- Materialized-view refresh queue: bad input, registration and its triggers, the write-path skip rules,
-- due / not due (debounce, max_delay, backoff) at controlled times, plain vs concurrent, failure logging
-- with backoff, unique-index reasons, status, verify checks, unregistering. The processor procedure
-- itself commits, so its concurrency is tested in test/refresh_queue.test.ts.
begin;
select plan(80);

create schema rq_tap;
create table rq_tap.src (id int primary key, grp int not null, v int not null default 0);
insert into rq_tap.src select g, g % 3, g from generate_series(1, 30) g;
create table rq_tap.src2 (id int primary key);
create view rq_tap.a_view as select 1 as x;
create materialized view rq_tap.mv as
  select s.grp, count(*) as n, sum(s.v) as total from rq_tap.src s group by s.grp with no data;
create unique index on rq_tap.mv (grp);
create materialized view rq_tap.mv_noidx as select s.grp, sum(s.v) as total from rq_tap.src s group by s.grp;
create materialized view rq_tap.mv_dup as select s.grp from rq_tap.src s with no data;  -- 10 rows per grp
create unique index on rq_tap.mv_dup (grp);

-- The processor refreshes as the kit's owner, and REFRESH needs the view's owner: give the fixtures to it,
-- as an application's migration role would own its views (register_matview refuses views it cannot refresh).
create function rq_tap.give_to_processor() returns void language plpgsql as $$
declare
  processor name := (select proowner::regrole::text from pg_proc where oid = 'ballast.process_materialized_view_refreshes(interval)'::regprocedure);
  r record;
begin
  execute format('alter schema rq_tap owner to %I', processor);
  for r in select c.oid::regclass as rel, c.relkind from pg_class c
           where c.relnamespace = 'rq_tap'::regnamespace and c.relkind in ('r', 'v', 'm') loop
    execute format('alter %s %s owner to %I', case r.relkind when 'm' then 'materialized view' when 'v' then 'view' else 'table' end, r.rel, processor);
  end loop;
end $$;
select rq_tap.give_to_processor();

-- Helpers for this file: a view's refresh triggers; its queue rows; its request flag; expire the flag
-- (as if the granularity had passed since the last recorded request).
create function rq_tap.triggers(v regclass)
returns table (source regclass, trigger_name name, request_flag regclass, function_name text, tgtype int, enabled boolean) language sql as
  $$ select t.* from ballast.refresh_triggers() t join ballast.registered_matviews r on r.request_flag = t.request_flag
     where r.matview = v $$;
create function rq_tap.pending(v regclass) returns bigint language sql as
  $$ select count(*) from ballast.materialized_view_refresh_queue where matview = v $$;
create function rq_tap.flag(v regclass) returns regclass language sql as
  $$ select request_flag from ballast.registered_matviews where matview = v $$;
create function rq_tap.expire(v regclass) returns void language sql as
  $$ select setval(rq_tap.flag(v), 1) $$;

-- ---- bad input: specific SQLSTATE, the message names the value, nothing is left behind
select throws_ok($$select ballast.register_matview('rq_tap.src', array['rq_tap.src']::regclass[])$$,
                 '42809', 'register_matview: rq_tap.src is a table, not a materialized view', 'a table is not a materialized view');
select throws_ok($$select ballast.register_matview(null, array['rq_tap.src']::regclass[])$$,
                 '22004', null, 'a null view is refused');
select throws_ok($$select ballast.register_matview('rq_tap.mv', array['rq_tap.a_view']::regclass[])$$,
                 '42809', 'register_matview: depends_on entry rq_tap.a_view is a view, not a table', 'a source that is a view is refused');
select throws_ok($$select ballast.register_matview('rq_tap.mv', array['rq_tap.src', 'rq_tap.mv_noidx']::regclass[])$$,
                 '42809', null, 'a source that is a materialized view is refused');
select throws_ok($$select ballast.register_matview('rq_tap.mv', '{}'::regclass[])$$, '22023', null, 'no sources is refused');
select throws_ok($$select ballast.register_matview('rq_tap.mv', array['rq_tap.src']::regclass[], debounce => '0')$$,
                 '22023', 'register_matview: debounce must be a positive interval, got 00:00:00', 'a zero debounce is refused');
select throws_ok($$select ballast.register_matview('rq_tap.mv', array['rq_tap.src']::regclass[], max_delay => '-1 minute')$$,
                 '22023', 'register_matview: max_delay must be a positive interval, got -00:01:00', 'a negative max_delay is refused');
select throws_ok($$select ballast.register_matview('rq_tap.mv', array['rq_tap.src']::regclass[], '30 seconds', '10 seconds')$$,
                 '22023', 'register_matview: max_delay (00:00:10) must be at least debounce (00:00:30)', 'max_delay < debounce is refused');
-- a view the processor cannot refresh is refused at registration, not failed every minute afterwards
create role rq_tap_stranger nologin;
create materialized view rq_tap.strangers as select s.grp from rq_tap.src s group by s.grp;
alter materialized view rq_tap.strangers owner to rq_tap_stranger;
select throws_ok($$select ballast.register_matview('rq_tap.strangers', array['rq_tap.src']::regclass[])$$, '42501',
                 format('register_matview: rq_tap.strangers is owned by rq_tap_stranger, but the refresh processor runs as %I, and REFRESH MATERIALIZED VIEW needs the owner',
                        (select proowner::regrole::text from pg_proc where oid = 'ballast.process_materialized_view_refreshes(interval)'::regprocedure)),
                 'a view the processor''s role does not own is refused (42501)');
create schema rq_tap_closed;
alter schema rq_tap_closed owner to rq_tap_stranger;
create materialized view rq_tap_closed.mv as select 1 as x;
select rq_tap.give_to_processor();  -- the views in rq_tap again; rq_tap_closed.mv below
select set_config('rq_tap.processor', (select proowner::regrole::text from pg_proc where oid = 'ballast.process_materialized_view_refreshes(interval)'::regprocedure), true);
do $$ begin execute format('alter materialized view rq_tap_closed.mv owner to %I', current_setting('rq_tap.processor')); end $$;
select throws_ok($$select ballast.register_matview('rq_tap_closed.mv', array['rq_tap.src']::regclass[])$$, '42501',
                 format('register_matview: the refresh processor runs as %I, which may not use schema rq_tap_closed of rq_tap_closed.mv, so it could never refresh it',
                        current_setting('rq_tap.processor')),
                 'a view in a schema the processor''s role may not use is refused (42501)');
select is((select count(*) from ballast.registered_matviews where matview in ('rq_tap.strangers'::regclass, 'rq_tap_closed.mv'::regclass)),
          0::bigint, 'views the processor cannot refresh are not registered');
drop materialized view rq_tap.strangers;
select is((select count(*) from ballast.registered_matviews where matview = 'rq_tap.mv'::regclass)
          + (select count(*) from rq_tap.triggers('rq_tap.mv')), 0::bigint, 'refused registrations leave nothing behind');
select throws_ok($$select ballast.request_refresh('rq_tap.mv')$$, '22023',
                 'request_refresh: rq_tap.mv is not registered with the refresh queue', 'request_refresh needs a registered view');
select throws_ok($$select ballast.request_refresh('rq_tap.src')$$, '42809', null, 'request_refresh needs a materialized view');
select throws_ok($$select ballast.unregister_matview('rq_tap.mv')$$, '22023', null, 'unregistering an unregistered view is refused');
select throws_ok($$call ballast.process_materialized_view_refreshes('0 seconds')$$, '22023',
                 'process_materialized_view_refreshes: max_runtime must be more than 0 and at most 1 day, got 00:00:00', 'a zero max_runtime is refused');

-- ---- registration installs one statement trigger per source; a second call updates, a third changes nothing
select lives_ok($$select ballast.register_matview('rq_tap.mv', array['rq_tap.src', 'rq_tap.src2', 'rq_tap.src']::regclass[])$$,
                'register_matview accepts a materialized view and its tables');
select is((select array_agg(source::text order by source::text) from rq_tap.triggers('rq_tap.mv')),
          array['rq_tap.src', 'rq_tap.src2'], 'one trigger on each (deduplicated) source');
select is((select array_agg(distinct tgtype) from rq_tap.triggers('rq_tap.mv')), array[62],
          'the triggers fire before each INSERT, UPDATE, DELETE and TRUNCATE statement');
select is((select array_agg(distinct function_name) from rq_tap.triggers('rq_tap.mv')),
          array['ballast.tg__matview_request_flag_' || 'rq_tap.mv'::regclass::oid],
          'they run the view''s generated function, named after its request flag');
select ok(pg_get_functiondef(('ballast.tg__matview_request_flag_' || 'rq_tap.mv'::regclass::oid || '()')::regprocedure)
          like '%''ballast.matview_request_flag_' || 'rq_tap.mv'::regclass::oid || '''::pg_catalog.regclass%',
          'which names the flag (not its oid: dump and restore keep it working)');
select ballast.register_matview('rq_tap.mv', array['rq_tap.src', 'rq_tap.src2']::regclass[], '40 seconds', '6 minutes');
select is((select (debounce, max_delay)::text from ballast.registered_matviews where matview = 'rq_tap.mv'::regclass),
          '(00:00:40,00:06:00)', 'registering again updates the settings');
create temp table rq_trigger_oids as
  select array_agg(t.oid order by t.oid) as oids from pg_trigger t where t.tgname = ballast.refresh_trigger_name('rq_tap.mv');
select ballast.register_matview('rq_tap.mv', array['rq_tap.src2', 'rq_tap.src']::regclass[], '40 seconds', '6 minutes');
select is((select array_agg(t.oid order by t.oid) from pg_trigger t where t.tgname = ballast.refresh_trigger_name('rq_tap.mv')),
          (select oids from rq_trigger_oids), 'an identical registration leaves the triggers alone (no lock on busy tables)');
select ballast.register_matview('rq_tap.mv', array['rq_tap.src']::regclass[], '30 seconds', '5 minutes');
select is((select array_agg(source::text) from rq_tap.triggers('rq_tap.mv')), array['rq_tap.src'],
          'a source left out of depends_on loses its trigger');

-- ---- the write path: a request (flag deadline + row), then nothing more until the granularity has passed
select is(pg_sequence_last_value(rq_tap.flag('rq_tap.mv')), null, 'a new view''s request flag holds nothing');
update rq_tap.src set v = v + 1 where id = 1;
select is(rq_tap.pending('rq_tap.mv'), 1::bigint, 'a write to a source queues a request');
select ok(ballast.request_flag_deadline(rq_tap.flag('rq_tap.mv')) between clock_timestamp() and clock_timestamp() + interval '1 second',
          'and sets the flag to a deadline one granularity (1 s for a 30 s debounce) ahead');
update rq_tap.src set v = v + 1 where id = 2;
insert into rq_tap.src2 values (1);
select is(rq_tap.pending('rq_tap.mv'), 1::bigint, 'further writes before the deadline add nothing');
select rq_tap.expire('rq_tap.mv');
delete from rq_tap.src where id = 30;
select is(rq_tap.pending('rq_tap.mv'), 2::bigint, 'once the deadline has passed, a write records a new request');
select ballast.register_matview('rq_tap.mv', array['rq_tap.src', 'rq_tap.src2']::regclass[]);
select rq_tap.expire('rq_tap.mv');
truncate rq_tap.src2;
select is(rq_tap.pending('rq_tap.mv'), 3::bigint, 'TRUNCATE queues a request too');
grant usage on schema rq_tap to ballast_member;
grant select, update on rq_tap.src to ballast_member;
select rq_tap.expire('rq_tap.mv');
select rq_tap.flag('rq_tap.mv')::text as mv_flag \gset
set local role ballast_member;
update rq_tap.src set v = v + 1 where id = 4;
select throws_ok($$select * from ballast.materialized_view_refresh_queue$$, '42501', null, 'a visitor cannot read the queue');
select throws_ok(format('select setval(%L, 0)', :'mv_flag'), '42501', null, 'nor move a request flag');
reset role;
select is(rq_tap.pending('rq_tap.mv'), 4::bigint, 'a visitor''s write queues a request (record_refresh_request is SECURITY DEFINER)');
select ballast.record_refresh_request('rq_tap.src2');
select is(rq_tap.pending('rq_tap.mv'), 4::bigint, 'record_refresh_request() ignores anything but a registered view''s flag');
select ballast.request_refresh('rq_tap.mv');
select is(rq_tap.pending('rq_tap.mv'), 5::bigint, 'request_refresh() always queues');

-- ---- plain vs concurrent
select ok(ballast.refresh_registered_matview('rq_tap.mv'), 'the first refresh succeeds');
select is((select mode || ' / ' || detail from ballast.mv_refresh_log where matview = 'rq_tap.mv'::regclass order by id desc limit 1),
          'plain / plain: not populated: the first refresh must be a plain REFRESH MATERIALIZED VIEW',
          'a never-populated view gets a plain refresh, and the log says why');
select ok(ballast.refresh_registered_matview('rq_tap.mv'), 'the second refresh succeeds');
select is((select mode from ballast.mv_refresh_log where matview = 'rq_tap.mv'::regclass order by id desc limit 1),
          'concurrent', 'a populated view with a unique index is refreshed CONCURRENTLY');
select is((select sum(total) from rq_tap.mv), (select sum(v) from rq_tap.src)::numeric, 'the view holds the current data');
select ballast.register_matview('rq_tap.mv_noidx', array['rq_tap.src']::regclass[]);
select ballast.refresh_registered_matview('rq_tap.mv_noidx');
select matches((select mode || ' / ' || detail from ballast.mv_refresh_log where matview = 'rq_tap.mv_noidx'::regclass order by id desc limit 1),
               '^plain / plain: no unique index', 'a view without a unique index gets a plain refresh, and the log says why');

-- ---- unique-index reasons not covered by test-sql/verify.sql
create materialized view rq_tap.mv_invalid as select 1 as n;
create unique index mv_invalid_n on rq_tap.mv_invalid (n);
update pg_index set indisvalid = false where indexrelid = 'rq_tap.mv_invalid_n'::regclass;
select matches((select reason from ballast.check_matview_unique_indexes() where matview = 'rq_tap.mv_invalid'::regclass),
               'mv_invalid_n is not valid', 'an invalid unique index is named as the reason');
select is((select concurrent_ok from ballast.check_matview_unique_indexes() where matview = 'rq_tap.mv_invalid'::regclass),
          false, 'so CONCURRENTLY is not ok');

-- ---- due or not, at controlled times (debounce 30 s, max_delay 5 min)
delete from ballast.materialized_view_refresh_queue where matview = 'rq_tap.mv'::regclass;
select setval(rq_tap.flag('rq_tap.mv'), 0);
select is((select count(*) from ballast.matviews_due(now()) where matview = 'rq_tap.mv'::regclass), 0::bigint,
          'a populated view with nothing pending is not due');
insert into ballast.materialized_view_refresh_queue (matview, requested_at) values ('rq_tap.mv', '2030-01-01 12:00:00+00');
select is((select count(*) from ballast.matviews_due('2030-01-01 12:00:29+00') where matview = 'rq_tap.mv'::regclass), 0::bigint,
          'not due 29 s after the only request');
select is((select why from ballast.matviews_due('2030-01-01 12:00:31+00') where matview = 'rq_tap.mv'::regclass),
          'debounce 00:00:30 passed since the last request', 'due 31 s after it: debounce');
insert into ballast.materialized_view_refresh_queue (matview, requested_at)
  select 'rq_tap.mv', '2030-01-01 12:00:00+00'::timestamptz + g * interval '20 seconds' from generate_series(1, 14) g;  -- until 12:04:40
select is((select count(*) from ballast.matviews_due('2030-01-01 12:04:59+00') where matview = 'rq_tap.mv'::regclass), 0::bigint,
          'writes every 20 s keep it from being due by debounce');
select is((select why from ballast.matviews_due('2030-01-01 12:05:01+00') where matview = 'rq_tap.mv'::regclass),
          'max_delay 00:05:00 passed since the oldest request', 'but max_delay after the oldest request it is due anyway');
update ballast.registered_matviews set next_attempt_at = '2030-01-01 12:10:00+00' where matview = 'rq_tap.mv'::regclass;
select is((select count(*) from ballast.matviews_due('2030-01-01 12:09:59+00') where matview = 'rq_tap.mv'::regclass), 0::bigint,
          'a view in failure backoff is not due');
select is((select count(*) from ballast.claim_matview_refresh('rq_tap.mv', '2030-01-01 12:09:59+00')), 0::bigint,
          'and cannot be claimed');
create temp table rq_claim as select * from ballast.claim_matview_refresh('rq_tap.mv', '2030-01-01 12:10:01+00');
select is((select (requests, oldest_request_at)::text from rq_claim),
          format('(15,"%s")', '2030-01-01 12:00:00+00'::timestamptz), 'after the backoff it is claimed: all 15 requests, the oldest first');
select is((select array_agg(id) from ballast.materialized_view_refresh_queue where matview = 'rq_tap.mv'::regclass),
          (select array[claim_row] from rq_claim), 'its requests are replaced by one row marking the claim');
select is(pg_sequence_last_value(rq_tap.flag('rq_tap.mv')), 0::bigint, 'claiming sets the request flag to 0');
select is((select count(*) from ballast.matviews_due('2030-01-01 12:10:02+00') where matview = 'rq_tap.mv'::regclass), 1::bigint,
          'until its refresh succeeds the view stays pending (a processor that dies after claiming loses nothing)');
select ok(ballast.refresh_registered_matview('rq_tap.mv', 15, '2030-01-01 12:00:00+00', null, false, (select claim_row from rq_claim)),
          'the claimed view is refreshed');
select is(rq_tap.pending('rq_tap.mv'), 0::bigint, 'and the claim''s row is gone: nothing pending');
update ballast.registered_matviews set next_attempt_at = null where matview = 'rq_tap.mv'::regclass;
select ballast.register_matview('rq_tap.mv_dup', array['rq_tap.src']::regclass[]);
select is((select why from ballast.matviews_due(now()) where matview = 'rq_tap.mv_dup'::regclass), 'never populated',
          'a registered view that was never populated is due without any request');

-- ---- failures: logged with the error, kept pending with their age, exponential backoff, others not blocked
select is(ballast.refresh_registered_matview('rq_tap.mv_dup', 3, '2030-01-01 12:00:00+00'), false, 'a failing refresh returns false');
select matches((select error from ballast.mv_refresh_log where matview = 'rq_tap.mv_dup'::regclass order by id desc limit 1),
               '^23505: ', 'the log records the SQLSTATE and message');
select is((select (consecutive_failures, next_attempt_at - l.finished_at)::text
           from ballast.registered_matviews r, lateral (select finished_at from ballast.mv_refresh_log x
                where x.matview = r.matview order by x.id desc limit 1) l where r.matview = 'rq_tap.mv_dup'::regclass),
          '(1,00:00:10)', 'first failure: retried 10 s later');
select is((select min(requested_at) from ballast.materialized_view_refresh_queue where matview = 'rq_tap.mv_dup'::regclass),
          '2030-01-01 12:00:00+00'::timestamptz, 'the view stays pending with the age of its oldest request');
update ballast.registered_matviews set next_attempt_at = null where matview = 'rq_tap.mv_dup'::regclass;
create temp table rq_claim_dup as select * from ballast.claim_matview_refresh('rq_tap.mv_dup');
select ballast.refresh_registered_matview('rq_tap.mv_dup', 1, '2030-01-01 12:00:00+00', null, false, (select claim_row from rq_claim_dup));
select is((select array_agg(requested_at) from ballast.materialized_view_refresh_queue where matview = 'rq_tap.mv_dup'::regclass),
          array['2030-01-01 12:00:00+00'::timestamptz], 'a failed claimed refresh keeps the claim''s row, with the oldest request''s time');
select is((select (consecutive_failures, next_attempt_at - l.finished_at)::text
           from ballast.registered_matviews r, lateral (select finished_at from ballast.mv_refresh_log x
                where x.matview = r.matview order by x.id desc limit 1) l where r.matview = 'rq_tap.mv_dup'::regclass),
          '(2,00:00:20)', 'second failure: 20 s');
select is(array[ballast.refresh_backoff(3), ballast.refresh_backoff(10), ballast.refresh_backoff(1000)],
          array[interval '40 seconds', interval '1 hour', interval '1 hour'], 'backoff doubles up to 1 hour');
select ballast.request_refresh('rq_tap.mv');
update ballast.materialized_view_refresh_queue set requested_at = now() - interval '1 minute' where matview = 'rq_tap.mv'::regclass;
select setval(rq_tap.flag('rq_tap.mv'), ballast.epoch_ms(now() - interval '30 seconds'));  -- last request 31 s ago
select is((select array_agg(matview::text order by matview::text) from ballast.matviews_due(now())
           where matview::text like 'rq_tap.%'), array['rq_tap.mv'], 'the failing view waits out its backoff; others stay due');
select ok((select bool_and(ok) from ballast.verify__refresh_queue() where check_name = 'refresh_queue failures rq_tap.mv_dup'),
          'two failures in a row are still ok for verify');
select ballast.refresh_registered_matview('rq_tap.mv_dup');
select is((select ok from ballast.verify__refresh_queue() where check_name = 'refresh_queue failures rq_tap.mv_dup'), false,
          'three failures in a row turn verify red');
select matches((select last_error || ' / ' || consecutive_failures from ballast.matview_status where matview = 'rq_tap.mv_dup'::regclass),
               '^23505: .* / 3$', 'matview_status shows the last error and the failure count');
select is((select (pending_since = requested, concurrent_ok, populated)::text from ballast.matview_status,
           (select min(requested_at) as requested from ballast.materialized_view_refresh_queue where matview = 'rq_tap.mv'::regclass) q
           where matview = 'rq_tap.mv'::regclass), '(t,t,t)', 'matview_status shows when a view became pending and that CONCURRENTLY works');

-- ---- verify: a missing trigger is reported, registering again repairs it
select ok((select ok from ballast.verify__refresh_queue() where check_name = 'refresh_queue triggers rq_tap.mv'), 'triggers present: ok');
do $$ begin execute format('drop trigger %I on rq_tap.src2', ballast.refresh_trigger_name('rq_tap.mv')); end $$;
select matches((select ok || ' ' || detail from ballast.verify__refresh_queue() where check_name = 'refresh_queue triggers rq_tap.mv'),
               '^false no enabled, current refresh trigger on rq_tap.src2', 'a dropped trigger is reported with its table');
select ballast.register_matview('rq_tap.mv', array['rq_tap.src', 'rq_tap.src2']::regclass[]);
select ok((select ok from ballast.verify__refresh_queue() where check_name = 'refresh_queue triggers rq_tap.mv'), 'registering again repairs it');

-- ---- a view dropped and created again (a migration changing its query) is registered afresh
drop materialized view rq_tap.mv_noidx;
create materialized view rq_tap.mv_noidx as select s.grp, sum(s.v) as total from rq_tap.src s group by s.grp;
select rq_tap.give_to_processor();
select ballast.register_matview('rq_tap.mv_noidx', array['rq_tap.src']::regclass[]);
select is((select count(*) from ballast.registered_matviews r where not exists (select from pg_class c where c.oid = r.matview)),
          0::bigint, 'the registration of the dropped view is gone');
select is((select count(*) from pg_trigger where tgrelid = 'rq_tap.src'::regclass and tgname = ballast.refresh_trigger_name('rq_tap.mv_noidx')),
          1::bigint, 'its source carries exactly one trigger, for the new view');

-- ---- unregistering removes triggers, requests and the registration; the log stays
select ballast.unregister_matview('rq_tap.mv');
select is((select count(*) from rq_tap.triggers('rq_tap.mv')) + rq_tap.pending('rq_tap.mv')
          + (select count(*) from ballast.registered_matviews where matview = 'rq_tap.mv'::regclass), 0::bigint,
          'unregister_matview removes triggers, pending requests and the registration');
select ok((select count(*) from ballast.mv_refresh_log where matview = 'rq_tap.mv'::regclass) > 0, 'the refresh log stays');
update rq_tap.src set v = v + 1 where id = 5;
select is(rq_tap.pending('rq_tap.mv'), 0::bigint, 'writes no longer queue requests');
select is(to_regclass('ballast.matview_request_flag_' || 'rq_tap.mv'::regclass::oid)::text
          || to_regprocedure('ballast.tg__matview_request_flag_' || 'rq_tap.mv'::regclass::oid || '()')::text, null,
          'its request flag and trigger function are dropped');

-- ---- a delete cascading into a source table (a parent of its rows) still requests a refresh
create table rq_tap.parent (id int primary key);
create table rq_tap.child (id int primary key, parent_id int not null references rq_tap.parent on delete cascade, v int not null);
insert into rq_tap.parent values (1), (2);
insert into rq_tap.child values (1, 1, 10), (2, 2, 20);
create materialized view rq_tap.child_totals as select parent_id, sum(v) as total from rq_tap.child group by parent_id;
create unique index on rq_tap.child_totals (parent_id);
select rq_tap.give_to_processor();
select ballast.register_matview('rq_tap.child_totals', array['rq_tap.child']::regclass[]);
select ok((select ok from ballast.verify__refresh_queue() where check_name = 'refresh_queue triggers rq_tap.child_totals'),
          'a registered view has its trigger on its source (verify__refresh_queue)');
select setval(rq_tap.flag('rq_tap.child_totals'), 0);
delete from ballast.materialized_view_refresh_queue where matview = 'rq_tap.child_totals'::regclass;
delete from rq_tap.parent where id = 1;
select is(rq_tap.pending('rq_tap.child_totals'), 1::bigint, 'a delete cascading from a parent table into the source requests a refresh');

select * from finish();
rollback;
