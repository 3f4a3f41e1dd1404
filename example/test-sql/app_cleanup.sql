-- Example app: pg_cron's run history is kept 7 days by a cleanup policy of the app's (example/sql/app_cleanup.sql).
begin;
select plan(2);

select is((select retain from ballast.cleanup_policies where tbl = 'cron.job_run_details'::regclass), interval '7 days',
  'the example keeps cron.job_run_details 7 days');
select ok(not exists (select 1 from ballast.cleanup_builtin_policies() b where b.tbl = 'cron.job_run_details'),
  'the kit itself installs no policy on pg_cron''s table');

select * from finish();
rollback;
