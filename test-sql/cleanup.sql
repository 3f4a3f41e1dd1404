-- cleanup: bad policies are refused with their own SQLSTATE and leave nothing behind; a batch never
-- deletes a row inside retention or one failing extra_condition, and says it is the cleanup path;
-- pg_cron jobs follow the policies; cron_next, status, verify checks and built-ins.
-- run_cleanup() commits per batch, which CALL cannot do inside this test's transaction: its loop
-- (max_runtime, resume, a concurrent run skipping) is tested with real sessions in test/cleanup.test.ts.
begin;
select plan(76);

-- pg_prove runs as the superuser; the tables belong to the owner, like the app's tables
set local role ballast_owner;
create schema cleanup_test;
create table cleanup_test.events (
  id bigint generated always as identity primary key,
  created_at timestamptz,
  status text not null,
  note text
);
create index events_created_at_idx on cleanup_test.events (created_at);
create table cleanup_test.noidx (id int primary key, created_at timestamptz not null);
create view cleanup_test.events_view as select * from cleanup_test.events;
create table cleanup_test.hidden (id int primary key, created_at timestamptz not null);
create index on cleanup_test.hidden (created_at);
alter table cleanup_test.hidden enable row level security, force row level security;
create policy read_only on cleanup_test.hidden for select using (true);
create table cleanup_test.local_times (id int primary key, at timestamp not null);
create index on cleanup_test.local_times (at);

-- the hint of the error a statement raises (null when it raises none)
create function pg_temp.hint_of(stmt text) returns text language plpgsql as $$
declare h text;
begin
  execute stmt;
  return null;
exception when others then
  get stacked diagnostics h = pg_exception_hint;
  return h;
end $$;

---------------------------------------------------------------- bad input is refused
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.noidx', 'created_at', '1 day')$$,
  '55000', null, 'no index leading with the time column: 55000');
select is(pg_temp.hint_of($$select ballast.add_cleanup_policy('cleanup_test.noidx', 'created_at', '1 day')$$),
  'create index concurrently on cleanup_test.noidx (created_at);', 'the hint is the create index that fixes it');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'nope', '1 day')$$,
  '42703', null, 'a column that does not exist: 42703');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'status', '1 day')$$,
  '42804', null, 'a column that is not a time: 42804');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '-1 day')$$,
  '22023', 'cleanup policy: retain must be a positive interval, got -1 days', 'a negative retain: 22023');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '0 seconds')$$,
  '22023', null, 'a zero retain: 22023');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 0)$$,
  '22023', null, 'batch_size 0: 22023');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '30 seconds')$$,
  '22023', null, 'a schedule pg_cron 1.4 does not take: 22023');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '0 0 31 2 *')$$,
  '22023', null, 'a schedule that never fires: 22023');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events_view', 'created_at', '1 day')$$,
  '42809', null, 'a view: 42809');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'id + 1')$$,
  '42804', null, 'extra_condition that is not boolean: 42804');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'nope = 1')$$,
  '42703', null, 'extra_condition on a column the table lacks: 42703');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'true; delete from cleanup_test.events')$$,
  '42601', null, 'extra_condition with a second statement: 42601');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'delete from cleanup_test.events')$$,
  '42601', null, 'extra_condition that is a statement: 42601');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'false) or (true')$$,
  '42601', null, 'extra_condition that closes the parentheses around it: 42601');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'status = ''done'' -- ')$$,
  '42601', null, 'extra_condition with a comment: 42601');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'count(*) > 0')$$,
  '42803', null, 'extra_condition with an aggregate: 42803');
select throws_ok($$select ballast.add_cleanup_policy('cleanup_test.hidden', 'created_at', '1 day')$$,
  '42501', null, 'forced row level security that hides rows from the job''s role: 42501');
select throws_ok($$select ballast.add_cleanup_policy(null, 'created_at', '1 day')$$,
  '22004', null, 'a null table: 22004');
select is((select count(*)::int from ballast.cleanup_policies where tbl::oid in
            ('cleanup_test.events'::regclass, 'cleanup_test.noidx'::regclass, 'cleanup_test.events_view'::regclass, 'cleanup_test.hidden'::regclass)),
  0, 'no refused call left a policy behind');
select is((select count(*)::int from cron.job where jobname like 'ballast cleanup cleanup_test.%'),
  0, 'no refused call left a pg_cron job behind');
select is(ballast.cleanup_expression_problem($$note = E'\') or (true'$$), null,
  'a quote escaped inside an E string does not end it');
select is(ballast.cleanup_expression_problem($$note = 'it''s ) done'$$), null,
  'parentheses inside a string do not count');

---------------------------------------------------------------- a policy and its pg_cron job
select is((ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '17 * * * *', 'status = ''done''')).retain,
  interval '1 day', 'a valid policy is stored');
select is((select command from cron.job where jobname = 'ballast cleanup cleanup_test.events'),
  $$call ballast.run_cleanup('00:00:50', 'cleanup_test.events')$$, 'its pg_cron job calls run_cleanup for the table');
select is((select username from cron.job where jobname = 'ballast cleanup cleanup_test.events'),
  'ballast_owner', 'the job runs as the owner');
select lives_ok($$select ballast.add_cleanup_policy('cleanup_test.events', 'created_at', '1 day', 100, '*/5 * * * *', 'status = ''done''')$$,
  'add_cleanup_policy again with another schedule');
select is((select schedule from cron.job where jobname = 'ballast cleanup cleanup_test.events'),
  '*/5 * * * *', 'calling add again updates the policy and its job');
select is((select count(*)::int from ballast.cleanup_policies where tbl = 'cleanup_test.events'::regclass), 1,
  'still one policy per table');
select throws_ok($$update ballast.cleanup_policies set extra_condition = 'true) or (true' where tbl = 'cleanup_test.events'::regclass$$,
  '42601', null, 'a direct UPDATE is validated too');
select throws_ok($$update ballast.cleanup_policies set retain = '-1 hour' where tbl = 'cleanup_test.events'::regclass$$,
  '22023', null, 'a direct UPDATE of retain is validated too');
update ballast.cleanup_policies set enabled = false where tbl = 'cleanup_test.events'::regclass;
select is((select count(*)::int from cron.job where jobname = 'ballast cleanup cleanup_test.events'), 0,
  'a disabled policy has no pg_cron job');
update ballast.cleanup_policies set enabled = true where tbl = 'cleanup_test.events'::regclass;
select is((select count(*)::int from cron.job where jobname = 'ballast cleanup cleanup_test.events'), 1,
  'enabling it schedules it again');

---------------------------------------------------------------- one batch: what it may delete
-- who is deleting: the audit log's append-only trigger lets DELETE through only on the cleanup path
create table cleanup_test.deleted_by (tbl text);
create table cleanup_test.may_delete (ok boolean);
create function cleanup_test.tg_events__note_path() returns trigger language plpgsql as $$
begin
  insert into cleanup_test.deleted_by values (current_setting('ballast.cleanup_table', true));
  insert into cleanup_test.may_delete values (ballast.cleanup_may_delete(TG_RELID::regclass, OLD.created_at));
  return OLD;
end $$;
create trigger _500_note_path before delete on cleanup_test.events
  for each row execute function cleanup_test.tg_events__note_path();

insert into cleanup_test.events (created_at, status, note)
select now() - interval '2 days' - g * interval '1 minute', 'done', 'old done' from generate_series(1, 250) g
union all select now() - interval '2 days', 'open', 'old open' from generate_series(1, 50)
union all select now() - interval '1 hour', 'done', 'recent done' from generate_series(1, 50)
union all select now() - interval '1 day' + interval '1 minute', 'done', 'just inside retention' from generate_series(1, 10)
union all select null, 'done', 'no time' from generate_series(1, 5);

select is(ballast.cleanup_may_delete('cleanup_test.events', now() - interval '2 days'), false,
  'cleanup_may_delete() says no outside the cleanup path');
select is(ballast.cleanup_batch('cleanup_test.events'), 100, 'a batch deletes batch_size rows');
select is((select count(*)::int from cleanup_test.events where note = 'old done' and created_at < now() - interval '2 days 150 minutes'),
  0, 'oldest first: the 100 oldest rows went');
select is(ballast.cleanup_batch('cleanup_test.events'), 100, 'the next batch takes the next 100');
select is(ballast.cleanup_batch('cleanup_test.events'), 50, 'then what is left');
select is(ballast.cleanup_batch('cleanup_test.events'), 0, 'then nothing');
select is((select count(*)::int from cleanup_test.events where note = 'old done'), 0, 'every expired row that matches is gone');
select is((select count(*)::int from cleanup_test.events where note = 'old open'), 50, 'rows failing extra_condition stay');
select is((select count(*)::int from cleanup_test.events where note = 'recent done'), 50, 'rows inside retention stay');
select is((select count(*)::int from cleanup_test.events where note = 'just inside retention'), 10, 'rows a minute inside retention stay');
select is((select count(*)::int from cleanup_test.events where note = 'no time'), 5, 'rows without a time stay');
select is((select array_agg(distinct tbl) from cleanup_test.deleted_by), array['cleanup_test.events'],
  'every delete ran with ballast.cleanup_table set to the table');
select is((select count(*)::int from cleanup_test.deleted_by), 250, 'the trigger saw each of the 250 deletes');
select is((select bool_and(ok) from cleanup_test.may_delete), true,
  'cleanup_may_delete() said yes to every row the batches deleted');
select is((select ballast.cleanup_may_delete('cleanup_test.events', now() - interval '2 days')
           from (select set_config('ballast.cleanup_table', 'cleanup_test.events', true)) x),
  true, 'and yes on it, for a row past retention');
select is((select ballast.cleanup_may_delete('cleanup_test.events', now() - interval '1 hour')
           from (select set_config('ballast.cleanup_table', 'cleanup_test.events', true)) x),
  false, 'but no for a row inside retention');
select throws_ok($$select ballast.cleanup_batch('cleanup_test.events', now())$$, '22023', null,
  'a cutoff inside retention is refused');
select throws_ok($$select ballast.cleanup_batch('cleanup_test.noidx')$$, '22023', null,
  'a table without a policy has no batch');
-- a timestamp without time zone works the same way
select lives_ok($$select ballast.add_cleanup_policy('cleanup_test.local_times', 'at', '1 day', 10)$$, 'a timestamp column is a time column');
insert into cleanup_test.local_times select g, localtimestamp - interval '3 days' from generate_series(1, 5) g;
insert into cleanup_test.local_times select g, localtimestamp from generate_series(6, 8) g;
select is(ballast.cleanup_batch('cleanup_test.local_times'), 5, 'timestamp columns: the expired rows go');
select is((select count(*)::int from cleanup_test.local_times), 3, 'timestamp columns: the recent rows stay');

---------------------------------------------------------------- cron_next
select is(ballast.cron_next('17 * * * *', '2026-01-01 10:20:00+00'), '2026-01-01 11:17:00+00'::timestamptz, 'hourly at :17');
select is(ballast.cron_next('17 * * * *', '2026-01-01 10:16:59+00'), '2026-01-01 10:17:00+00'::timestamptz, 'later this hour');
select is(ballast.cron_next('@daily', '2026-01-01 10:20:00+00'), '2026-01-02 00:00:00+00'::timestamptz, '@daily is midnight UTC');
select is(ballast.cron_next('0 9 * * mon', '2026-01-01 10:20:00+00'), '2026-01-05 09:00:00+00'::timestamptz, 'weekday names (2026-01-05 is a Monday)');
select is(ballast.cron_next('0 0 13 * 5', '2026-01-01 00:00:00+00'), '2026-01-02 00:00:00+00'::timestamptz,
  'day of month and day of week both restricted: either matches (2026-01-02 is a Friday)');
select is(ballast.cron_next('*/15 2-3 * * *', '2026-01-01 03:50:00+00'), '2026-01-02 02:00:00+00'::timestamptz, 'steps and ranges');

---------------------------------------------------------------- status and verify
select is((select rows_behind from ballast.cleanup_status where policy = 'cleanup_test.events'::regclass), 0::bigint,
  'status: nothing past retention now');
select isnt((select next_run_at from ballast.cleanup_status where policy = 'cleanup_test.events'::regclass), null,
  'status: the next scheduled run is known');
select is((select ok from ballast.verify__cleanup() where check_name = 'cleanup index cleanup_test.events'), true,
  'verify: the policy''s index exists');
drop index cleanup_test.events_created_at_idx;
select is((select detail from ballast.verify__cleanup() where check_name = 'cleanup index cleanup_test.events'),
  'no index on cleanup_test.events leads with created_at: create index concurrently on cleanup_test.events (created_at);',
  'verify: a dropped index is reported with the statement that fixes it');
create index events_created_at_idx on cleanup_test.events (created_at);
reset role;
alter table ballast.cleanup_policies disable trigger _100_validate;
update ballast.cleanup_policies set updated_at = '2026-01-01 10:00:00+00' where tbl = 'cleanup_test.events'::regclass;
alter table ballast.cleanup_policies enable trigger _100_validate;
set local role ballast_owner;
select is(ballast.cleanup_schedules_behind('cleanup_test.events', '2026-01-01 10:20:00+00'), 3,
  'schedules behind: */5 since 10:00, at 10:20: 10:05, 10:10, 10:15 missed; 10:20 may still be running');
select is((select ok from ballast.verify__cleanup() where check_name = 'cleanup schedule cleanup_test.events'), false,
  'verify: a policy more than 2 schedules behind is not ok');
insert into ballast.cleanup_runs (policy, table_name, started_at, finished_at, cutoff, stopped_by)
values ('cleanup_test.events', 'cleanup_test.events', now() - interval '2 minutes', now(), now() - interval '1 day', 'done');
select is((select ok from ballast.verify__cleanup() where check_name = 'cleanup schedule cleanup_test.events'), true,
  'verify: a run that caught up makes it ok again');

---------------------------------------------------------------- drop, built-ins
select is(ballast.drop_cleanup_policy('cleanup_test.events'), true, 'drop_cleanup_policy drops it');
select is((select count(*)::int from cron.job where jobname = 'ballast cleanup cleanup_test.events'), 0, 'and its pg_cron job');
select is(ballast.drop_cleanup_policy('cleanup_test.events'), false, 'dropping it again says there was none');
select is((select builtin from ballast.cleanup_policies where tbl = 'ballast.cleanup_runs'::regclass), true,
  'built-in: cleanup_runs is kept 30 days');
select ok(not exists (select 1 from ballast.cleanup_builtin_policies() b where b.tbl !~ '^ballast\.'),
  'built-ins clean only the kit''s own tables (pg_cron''s history is the app''s to clean: example/sql/app_cleanup.sql)');
select is((select retain || ' ' || schedule from ballast.cleanup_policies where tbl = 'ballast.cache_invalidation_queue'::regclass),
  '01:00:00 */5 * * * *', 'built-in: delivered cache invalidations go an hour after delivery, every 5 minutes');
select is((select count(*)::int from cron.job where command ~ 'delete from ballast\.|cleanup_cache_invalidations'), 0,
  'no other pg_cron job deletes ballast rows: the cleanup policies own retention');
update ballast.cleanup_policies set retain = '90 days' where tbl = 'ballast.cleanup_runs'::regclass;
select is((select count(*)::int from ballast.install_builtin_cleanup_policies() x where x = 'ballast.cleanup_runs'), 0,
  'installing the built-ins again adds nothing that is there');
select is((select retain from ballast.cleanup_policies where tbl = 'ballast.cleanup_runs'::regclass), interval '90 days',
  'and keeps the user''s adjustment');

select * from finish();
rollback;
